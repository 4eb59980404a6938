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
    control.serve(loop, Echo)


if __name__ == "__main__":
    main()
