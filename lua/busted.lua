-- The spec runner moved to lua/luanet_busted.lua and lua/luanet_busted/
-- (a name that cannot shadow a real busted). This stub only keeps
-- host.load_module("busted") callers working until they move; it is not
-- on any package.path and requires nothing.
return { moved_to = "luanet_busted" }
