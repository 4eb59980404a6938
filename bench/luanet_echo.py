"""The luanet echo: the script a Lua author writes from the docs, in a LuaHost.

    python bench/luanet_echo.py --loop asyncio|uvloop [--lua 5.4] [--own-loop]

Same shape as asyncio_echo.py: the port is the first line of stdout, then the
control protocol of bench/control.py on stdin/stdout. By default the host
attaches to an event loop this program creates (uvloop.new_event_loop() or
asyncio.new_event_loop()), so the loop under test is the one asked for;
--own-loop lets the host make its own loop and runs it with serve_forever().
"""

import argparse
import asyncio
import sys

import control

SCRIPT = """
server = net.TcpServer.new()
server.max_pending_connections = 1000
assert(server:listen(0))
server.new_connection_handler = function(s)
  while s.has_pending_connections do
    local c = s:next_pending_connection()
    c.ready_read_handler = function(c) c:write_string(c:read_all_string()) end
  end
end
"""

errors = []


def on_error(message):
    # A Lua error in the echo is a broken benchmark: say so on stderr and let
    # the runner see the count in every stats reply.
    errors.append(message)
    sys.stderr.write(f"luanet handler error: {message}\n")
    sys.stderr.flush()


def extra():
    return {"lua_errors": len(errors)}


def start(host):
    host.execute(SCRIPT, name="=bench_echo")
    port = int(host.eval("server.port"))
    control.announce_port(port)


def run_attached(loop_name, lua):
    from luanet import LuaHost

    loop = control.new_loop(loop_name)
    asyncio.set_event_loop(loop)

    async def main():
        stop = asyncio.Event()
        host = LuaHost(lua=lua, bind_address="127.0.0.1", on_error=on_error,
                       loop=asyncio.get_running_loop())
        try:
            start(host)
            control.serve_control(loop, stop.set, extra)
            await stop.wait()
        finally:
            await host.aclose()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def run_own_loop(lua):
    from luanet import LuaHost

    with LuaHost(lua=lua, bind_address="127.0.0.1", on_error=on_error) as host:
        start(host)
        control.serve_control(host.loop, host.stop, extra)
        host.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    ap.add_argument("--lua", default="5.4")
    ap.add_argument("--own-loop", action="store_true",
                    help="let LuaHost pick and run its own loop (ignores --loop)")
    ap.add_argument("--profile", metavar="PATH",
                    help="run under cProfile and dump the stats to PATH at exit "
                         "(for finding where the time goes; inflates every figure)")
    args = ap.parse_args()
    control.raise_fd_limit()
    run = (lambda: run_own_loop(args.lua)) if args.own_loop else (
        lambda: run_attached(args.loop, args.lua))
    if args.profile:
        import cProfile
        prof = cProfile.Profile()
        try:
            prof.runcall(run)
        finally:
            prof.dump_stats(args.profile)
    else:
        run()


if __name__ == "__main__":
    main()
