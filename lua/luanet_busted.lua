-- Entry of luanet's busted-compatible spec runner (luanet/spec.py loads it
-- with host.load_module("luanet_busted"), which passes the debug library even
-- in a sandboxed host). The runner's modules live in lua/luanet_busted/; the
-- host hands their sources over with define(name, source), since a sandboxed
-- host cannot read files. require_module(name) then runs one (once), passing
-- it the debug library and this same require_module.
--
-- The name luanet_busted cannot shadow a real busted on package.path: specs
-- reach the runner through require "busted" / "luassert" / "say", which the
-- runner answers from package.loaded (see runner.lua).

local debug_lib = ...
local load, loadstring, error, type = load, loadstring, error, type

local sources, modules = {}, {}
local M = {}

function M.define(name, source)
  sources[name] = source
end

function M.require_module(name)
  local module = modules[name]
  if module ~= nil then return module end
  local source = sources[name]
  if type(source) ~= "string" then error("luanet_busted: no module " .. tostring(name), 2) end
  local chunk_name = "@luanet/luanet_busted/" .. name .. ".lua"
  local chunk, message
  if loadstring then chunk, message = loadstring(source, chunk_name)
  else chunk, message = load(source, chunk_name, "t") end
  if not chunk then error(message, 0) end
  module = chunk(debug_lib, M.require_module)
  if module == nil then module = true end
  modules[name] = module
  return module
end

return M
