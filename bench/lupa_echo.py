"""The lupa floor: the least a server must do to run its echo handler in Lua
through lupa, with nothing of luanet's API.

    python bench/lupa_echo.py --loop asyncio|uvloop [--lua 5.4]

The loop's own server accepts (in C on uvloop). Each connection is a Lua
table, made when it connects and dropped when it closes; received bytes go
to Lua batched, one call per loop turn, as luanet sends its events; the Lua
handler writes them back through one Python function. No state machine, no
queue, no limits, no event order beyond what the loop gives: none of what
API.md asks for. `run.py --b lupa` sets it beside the plain asyncio echo,
which tells how much of each goal lupa alone uses up (RESULTS.md).
Same command line and control protocol as asyncio_echo.py.
"""

import argparse
import asyncio
import importlib

import control

CONNECTED, DATA, CLOSED = 1, 2, 3
LUPA_MODULES = {"5.4": "lua54", "5.1": "lua51", "luajit": "luajit21"}

LUA = """
local write, write_at = ...
local conns = {}
local select = select
local delivered, at  -- bytes of 1 KiB or more being delivered, their place in the batch
-- what a script author's handler does: write back what was read. Bytes
-- handed in go back as Python's own object, as luanet does (lupa would
-- copy the string back); below 1 KiB the copy costs less than the check.
local function on_read(conn, data)
  if data == delivered then write_at(conn.id, at) else write(conn.id, data) end
end
return function(...)  -- a batch: kind, id, data, kind, id, data, ...
  local batch = { ... }
  for i = 1, select("#", ...), 3 do
    local kind, id = batch[i], batch[i + 1]
    if kind == 2 then
      local conn, data = conns[id], batch[i + 2]
      if #data >= 1024 then delivered, at = data, i + 2 end
      conn.handler(conn, data)
      delivered = nil
    elseif kind == 1 then
      conns[id] = { id = id, handler = on_read }
    else
      conns[id] = nil
    end
  end
end
"""


class Floor:
    """One Lua state; the transports by id; the batch of this loop turn."""

    def __init__(self, loop, lua):
        module = importlib.import_module("lupa." + LUPA_MODULES[lua])
        self.loop = loop
        self.transports = {}
        self.batch = []
        self.next_id = 0
        self.delivering = []
        self.dispatch = module.LuaRuntime(encoding=None).execute(LUA, self.write, self.write_at)

    def write(self, cid, data):
        transport = self.transports.get(cid)
        if transport is not None:
            transport.write(data)

    def write_at(self, cid, at):
        self.write(cid, self.delivering[at - 1])

    def post(self, kind, cid, data):
        if not self.batch:
            self.loop.call_soon(self.flush)
        self.batch += (kind, cid, data)

    def flush(self):
        self.delivering, self.batch = self.batch, []
        self.dispatch(*self.delivering)


class Conn(asyncio.Protocol):
    __slots__ = ("floor", "id")

    def __init__(self, floor):
        self.floor = floor

    def connection_made(self, transport):
        floor = self.floor
        floor.next_id += 1
        self.id = floor.next_id
        floor.transports[self.id] = transport
        floor.post(CONNECTED, self.id, None)

    def data_received(self, data):
        self.floor.post(DATA, self.id, data)

    def connection_lost(self, exc):
        del self.floor.transports[self.id]
        self.floor.post(CLOSED, self.id, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    ap.add_argument("--lua", default="5.4", choices=sorted(LUPA_MODULES))
    args = ap.parse_args()
    control.raise_fd_limit()
    loop = control.new_loop(args.loop)
    asyncio.set_event_loop(loop)
    floor = Floor(loop, args.lua)
    control.serve(loop, lambda: Conn(floor))


if __name__ == "__main__":
    main()
