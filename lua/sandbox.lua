-- Confines the global environment of a sandboxed host, in place: no Python,
-- no file system, no processes, no native code, no binary chunks. What stays
-- is the pure-Lua standard library plus net and luanet (required from
-- package.preload, and Lua source files found on the host's lua_path). Run
-- by the bridge after the binding has captured what it needs
-- (debug.traceback), as `chunk(lua_path)`.

local lua_path = ...
local G = _G
local type, sub, error, pairs, rawget, gsub, gmatch, format =
      type, string.sub, error, pairs, rawget, string.gsub, string.gmatch, string.format
local load, loadstring, setmetatable = load, loadstring, setmetatable
local open = io and io.open

-- Libraries a script may keep. Everything else goes: io, os (but its clock
-- functions), debug, package loaders for C and files, LuaJIT's ffi and jit.*.
local SAFE_MODULES = {
  _G = true, string = true, table = true, math = true, coroutine = true,
  utf8 = true, bit = true, bit32 = true, net = true, luanet = true,
}

local os = G.os
G.os = os and {
  time = os.time, clock = os.clock, date = os.date, difftime = os.difftime,
} or nil

for _, name in pairs({ "io", "debug", "python", "dofile", "loadfile", "module",
                       "jit", "ffi", "newproxy", "gcinfo" }) do
  G[name] = nil
end
G.string.dump = nil

local package = G.package
if package then
  for name in pairs(package.loaded) do
    if not SAFE_MODULES[name] then package.loaded[name] = nil end
  end
  for name in pairs(package.preload) do
    if not SAFE_MODULES[name] then package.preload[name] = nil end
  end
  package.loaded.os = G.os
  package.loadlib = nil
  package.path, package.cpath = "", ""
  local preload = package.preload
  local function from_preload(name)
    local loader = preload[name]
    if loader then return loader end
    return "\n\tno module '" .. name .. "' (a sandboxed script can require only net and luanet)"
  end
  if package.searchers then package.searchers = { from_preload } end
  if package.loaders then package.loaders = { from_preload } end
  package.searchpath = nil
end

-- Lua source files on the host's lua_path (LuaHost(lua_path=...), luanet run
-- --lua-path): read here, with io captured before it goes, and loaded as
-- text only. Nothing else of the file system is reachable.
local function source_loader(name)
  if not open or lua_path == "" then return nil, "" end
  local tried = {}
  local file_name = gsub(name, "%.", "/")
  for template in gmatch(lua_path, "[^;]+") do
    local path = gsub(template, "%?", file_name)
    local f = open(path, "rb")
    if f then
      local source = f:read("*a")
      f:close()
      if sub(source, 1, 1) == "#" then source = "--" .. source end
      if sub(source, 1, 1) == "\27" then error(format("error loading module '%s' from file '%s':\n\tbinary chunks are not loaded in a sandbox", name, path), 3) end
      local chunk, why = (loadstring or load)(source, "@" .. path)
      if not chunk then error(format("error loading module '%s' from file '%s':\n\t%s", name, path, why), 3) end
      return chunk, path
    end
    tried[#tried + 1] = "\n\tno file '" .. path .. "'"
  end
  return nil, table.concat(tried)
end

-- require: preloaded modules (net, luanet), then Lua source on lua_path;
-- works the same on 5.1 to 5.5.
local loaded = package.loaded
function G.require(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'require' (string expected, got " .. type(name) .. ")", 2)
  end
  local value = loaded[name]
  if value ~= nil then return value end
  local loader, where = package.preload[name], ":preload:"
  if not loader then
    local tried
    loader, tried = source_loader(name)
    if not loader then
      error(format("module '%s' not found:\n\tno field package.preload['%s']%s%s", name, name, tried,
        lua_path == "" and " (a sandboxed script can require net, luanet and modules on the host's lua_path)" or ""), 2)
    end
    where = tried
  end
  value = loader(name, where)
  if value == nil then value = loaded[name] end
  if value == nil then value = true end
  loaded[name] = value
  return value
end

-- No finalisers: a __gc runs where no hook can stop it (and on a closed
-- host, inside the collector of a runtime that is being freed). Refused when
-- the metatable is set, which is the only moment Lua reads __gc.
G.setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("bad argument #2 to 'setmetatable' (a sandboxed script cannot install a finaliser (__gc))", 2)
  end
  return setmetatable(t, mt)
end

-- Binary chunks can break the VM's safety: only text is loaded.
local function is_binary(chunk) return sub(chunk, 1, 1) == "\27" end

local function text_reader(reader)
  local first = true
  return function()
    local piece = reader()
    if first and type(piece) == "string" and piece ~= "" then
      first = false
      if is_binary(piece) then error("attempt to load a binary chunk", 0) end
    end
    return piece
  end
end

if load then
  G.load = function(chunk, name, mode, env)
    if type(chunk) == "string" then
      if is_binary(chunk) then return nil, "attempt to load a binary chunk (mode is 't')" end
    elseif type(chunk) == "function" then
      chunk = text_reader(chunk)
    end
    if env ~= nil then return load(chunk, name, "t", env) end
    return load(chunk, name, "t")
  end
end
if loadstring then
  G.loadstring = function(chunk, name)
    if type(chunk) == "string" and is_binary(chunk) then
      return nil, "attempt to load a binary chunk"
    end
    return loadstring(chunk, name)
  end
end
