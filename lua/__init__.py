"""The Lua half of luanet, shipped as package data (see pyproject.toml)."""
