"""pytest plugin collecting *_spec.lua files (see luanet.spec)."""
