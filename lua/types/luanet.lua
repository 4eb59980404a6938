---@meta luanet

-- LuaLS (sumneko) annotations for the `luanet` helper module.
-- This file is never run: it only tells the editor what `luanet` holds.
-- See README.md in this folder for how to point VS Code at it.

---Helpers for specs and scripts that drive the event loop themselves.
---Available as the global `luanet` and as `require("luanet")`.
---
---Both functions raise a clear error when called from inside a handler or
---callback: the event loop is already running there.
---@class luanet
luanet = {}

---Runs the event loop until `predicate()` returns a true value or `timeout`
---seconds pass. Returns true if the predicate became true, false on timeout.
---
---```lua
---local got
---client.ready_read_handler = function(s) got = s:read_all_string() end
---assert(luanet.run_until(function() return got ~= nil end, 5))
---```
---@param predicate fun(): any
---@param timeout number seconds
---@return boolean satisfied
function luanet.run_until(predicate, timeout) end

---Runs the event loop for `seconds` seconds.
---@param seconds number
function luanet.run_for(seconds) end

return luanet
