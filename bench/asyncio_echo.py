"""The baseline: a plain asyncio Protocol echo server (data_received -> write).

    python bench/asyncio_echo.py --loop asyncio|uvloop

Listens on 127.0.0.1, port chosen by the kernel, printed as the first line of
stdout; then speaks the control protocol of bench/control.py on stdin/stdout.
"""

import argparse
import asyncio

import control


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    args = ap.parse_args()
    control.raise_fd_limit()
    loop = control.new_loop(args.loop)
    asyncio.set_event_loop(loop)
    # backlog as large as the kernel allows (somaxconn caps it): the idle
    # scenario opens thousands of connections in a burst.
    server = loop.run_until_complete(
        loop.create_server(Echo, "127.0.0.1", 0, backlog=4096))
    control.announce_port(server.sockets[0].getsockname()[1])
    control.serve_control(loop, loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.close()


if __name__ == "__main__":
    main()
