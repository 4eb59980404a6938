-- Confines the global environment of a sandboxed host, in place: no Python,
-- no file system, no processes, no native code, no binary chunks. What stays
-- is the pure-Lua standard library plus net and luanet (required from
-- package.preload only). Run by the bridge after net.lua has captured what it
-- needs (debug.traceback), as `chunk()`.

local G = _G
local type, sub, error, pairs = type, string.sub, error, pairs
local load, loadstring = load, loadstring

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

for _, name in pairs({ "io", "debug", "python", "dofile", "loadfile", "require", "module",
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

-- require, limited to preloaded modules (works the same on 5.1 to 5.5).
local loaded = package.loaded
function G.require(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'require' (string expected, got " .. type(name) .. ")", 2)
  end
  local value = loaded[name]
  if value ~= nil then return value end
  local loader = package.preload[name]
  if not loader then
    error("module '" .. name .. "' not found (a sandboxed script can require only net and luanet)", 2)
  end
  value = loader(name)
  if value == nil then value = true end
  loaded[name] = value
  return value
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
