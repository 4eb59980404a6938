-- Shared helpers of luanet's own spec files: require "spec.helpers".
local busted = require "busted"

local helpers = {}

--- Runs the event loop until fn() is true (or `timeout` seconds, default 2).
function helpers.wait(fn, timeout)
  return luanet.run_until(fn, timeout or 2)
end

--- Declares that a handler of the running test raises an error containing
--- `text` on purpose: the runner then does not fail the test for it.
function helpers.expect_handler_error(text)
  busted.expect_handler_error(text)
end

return helpers
