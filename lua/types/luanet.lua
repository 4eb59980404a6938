---@meta luanet

-- LuaLS (sumneko) annotations for the `luanet` helper module.
-- This file is never run: it only tells the editor what `luanet` holds.
-- See README.md in this folder for how to point VS Code at it.

---Helpers for specs and scripts: drive the event loop, timers.
---Available as the global `luanet` and as `require("luanet")`.
---@class luanet
---@field Timer luanet.TimerClass
luanet = {}

---Runs the event loop until `predicate()` returns a true value or `timeout`
---seconds pass. Returns true if the predicate became true, false on timeout.
---Raises when called from inside a handler (the loop is already running
---there), and raises `interrupted` after Ctrl-C/SIGTERM under `luanet run`.
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

---Runs the event loop for `seconds` seconds (same rules as `run_until`).
---@param seconds number
function luanet.run_for(seconds) end

---A started single-shot timer that calls `fn(timer)` once, `seconds` from now.
---It stays alive without a reference until it fires or is stopped.
---@param seconds number
---@param fn fun(timer: luanet.Timer)
---@return luanet.Timer
function luanet.after(seconds, fn) end

---A started repeating timer that calls `fn(timer)` every `seconds`, until
---`timer:stop()`. It stays alive without a reference while it runs.
---@param seconds number
---@param fn fun(timer: luanet.Timer)
---@return luanet.Timer
function luanet.every(seconds, fn) end

---A timer, as Qt's QTimer. Fields are read as properties; the handler is
---assigned as a field; unknown keys raise.
---@class luanet.Timer
---@field interval number # Read/write. Seconds between firings (a non-negative number; default 0).
---@field single_shot boolean # Read/write. Fire once, then stop (default false).
---@field active boolean # Read only. True while the timer runs.
---@field remaining number # Read only. Seconds until it fires, or -1 when stopped.
---@field timeout_handler fun(timer: luanet.Timer)|nil # Called from the event loop each time the timer fires.
local Timer = {}

---The `luanet.Timer` class table.
---@class luanet.TimerClass
local TimerClass = {}

---A stopped timer: `interval` 0, `single_shot` false.
---@return luanet.Timer
function TimerClass.new() end

---(Re)starts the timer from now; `interval` (seconds), when given, replaces
---the current one.
---@param interval? number
function Timer:start(interval) end

---Stops the timer; works inside its own handler too.
function Timer:stop() end

luanet.Timer = TimerClass

return luanet
