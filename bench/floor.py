"""lupa's floor: what one crossing costs, in user-space instructions (callgrind).

    python bench/floor.py [--lua 5.4] [--n 20000]

Each figure is measured twice under callgrind, with N and 2N repetitions, and
the difference divided by N: start-up, imports and the runtime's creation
cancel out. Figures, per repetition:

  py->lua    a Python call of an empty Lua function with one integer argument
  lua->py    a Lua call of an empty Python function with one integer argument
             (minus the same Lua loop calling an empty Lua function)
  event      one event delivered on its own: EventQueue.post, the batch, the
             bridge's listener, flush, dispatch into Lua, an empty
             error_handler(obj, code) (minus the loop callback that posts it)
  read+write the echo's two methods on a delivered chunk: read_all_string()
             then write_string() of it (write refused: the socket is not
             connected, so no kernel call), minus an empty handler
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable

CHILD = r"""
import asyncio, sys
sys.path.insert(0, ROOT)
what, n, lua = sys.argv[1], int(sys.argv[2]), sys.argv[3]
from luanet import LuaHost
from luanet.core import Event

if what in ("py->lua", "lua->py", "lua->lua"):
    import importlib
    from luanet.bridge import LUA_MODULES
    rt = importlib.import_module(LUA_MODULES[lua]).LuaRuntime(encoding=None)
    if what == "py->lua":
        f = rt.eval("function(a) end")
        for i in range(n):
            f(i)
    else:
        loop = rt.eval("function(g, n) for i = 1, n do g(i) end end")
        g = (lambda a: None) if what == "lua->py" else rt.eval("function(a) end")
        loop(g, n)
    sys.exit(0)

loop = asyncio.new_event_loop()
host = LuaHost(lua=lua, loop=loop)
host.execute('''
s = net.TcpSocket.new()
s.error_handler = function(s, code) end
''')
bridge = host._bridge
oid = max(bridge._objects)
sock = bridge._objects[oid]
events = host._events
post = events.post
listener = sock.listener
left = [n]
ERROR = int(Event.ERROR)


def repeated(each):
    # n repetitions, one a loop turn; the base variants run the same loop
    # with an empty (or the same) `each`, so the loop itself cancels out
    def step():
        each()
        left[0] -= 1
        if left[0]:
            loop.call_soon(step)
        else:
            loop.stop()
    return step


def deliver_chunk():
    bridge._batch += (int(Event.READY_READ), oid, b"x" * 64)
    post(lambda: None)


READY_READ_HANDLERS = {
    "read+write": "function(c) c:write_string(c:read_all_string()) end",
    "read+write-base": "function(c) end",
}

if what == "event":
    step = repeated(lambda: post(listener, sock, ERROR, 1, None))
elif what in READY_READ_HANDLERS:
    host.execute("s.ready_read_handler = " + READY_READ_HANDLERS[what])
    step = repeated(deliver_chunk)
else:  # event-base: the same loop, nothing posted
    step = repeated(lambda: None)
loop.call_soon(step)
loop.run_forever()
"""


def instructions(what, n, lua):
    out = tempfile.NamedTemporaryFile(prefix="floor-", suffix=".out", delete=False).name
    try:
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        PY, "-c", CHILD.replace("ROOT", repr(ROOT)), what, str(n), lua],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            for line in f:
                m = re.match(r"(?:summary|totals):\s+(\d+)", line)
                if m:
                    return int(m.group(1))
    finally:
        os.unlink(out)
    raise RuntimeError("no count")


def per(what, n, lua):
    return (instructions(what, 2 * n, lua) - instructions(what, n, lua)) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lua", default="5.4")
    ap.add_argument("--n", type=int, default=20000)
    opts = ap.parse_args()
    n, lua = opts.n, opts.lua
    py_lua = per("py->lua", n, lua)
    lua_py = per("lua->py", n, lua) - per("lua->lua", n, lua)
    event = per("event", n, lua) - per("event-base", n, lua)
    rw = per("read+write", n, lua) - per("read+write-base", n, lua)
    print(f"Lua {lua}, Ir per repetition (callgrind, N={n} vs 2N)")
    print(f"  Python -> Lua call      {py_lua:8.0f}")
    print(f"  Lua -> Python call      {lua_py:8.0f}")
    print(f"  one unbatched event     {event:8.0f}")
    print(f"  read_all+write_string   {rw:8.0f}")


if __name__ == "__main__":
    main()
