"""A bounded soak (issue 8): echo, churn and resets against one host for a
while; its descriptors and memory must end where they settled, not grow.

The host runs in a child process with a watchdog (the subprocess timeout);
the load comes from this process over 127.0.0.1. `make test` soaks for a few
seconds, `make stress` (LUANET_STRESS=1) for a minute.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

STRESS = os.environ.get("LUANET_STRESS") == "1"
SECONDS = 60.0 if STRESS else 6.0

HOST_CHILD = r"""
import json, os, sys, gc
from luanet import LuaHost
host = LuaHost(lua=sys.argv[1], bind_address="127.0.0.1", max_memory=32 << 20,
               handler_time_limit=0.5, read_buffer_size=256 << 10)
host.execute('''
server = net.TcpServer.new(); assert(server:listen(0))
server.new_connection_handler = function(s)
  local c = s:next_pending_connection()
  c.ready_read_handler = function(c) c:write_string(c:read_all_string()) end
end
''')
print(host.eval("server.port"), flush=True)

def sample():
    gc.collect()
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return {"fds": len(os.listdir("/proc/self/fd")), "rss": rss,
            "lua": host._bridge.runtime.get_memory_used()}

for line in sys.stdin:  # "sample" -> one JSON line; EOF -> end
    host.run_for(0.2)   # let closes finish
    print(json.dumps(sample()), flush=True)
"""


def _load(port: int, until: float, counts: dict) -> None:
    """One client's loop: an echo round, a churned connection, a reset."""
    payload = os.urandom(1024)
    while time.time() < until:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            for _ in range(5):
                s.sendall(payload)
                got = b""
                while len(got) < len(payload):
                    chunk = s.recv(65536)
                    assert chunk, "server closed"
                    got += chunk
                assert got == payload
                counts["echo"] += 1
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            counts["churn"] += 1
        r = socket.create_connection(("127.0.0.1", port), timeout=10)
        r.sendall(b"x" * 100)
        r.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        r.close()  # RST
        counts["reset"] += 1


@pytest.mark.stress
@pytest.mark.parametrize("lua", ["5.4", "luajit"])
def test_soak_ends_flat(lua):
    proc = subprocess.Popen([sys.executable, "-c", HOST_CHILD, lua], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())

        def sample() -> dict:
            proc.stdin.write("sample\n")
            proc.stdin.flush()
            return json.loads(proc.stdout.readline())

        # the child serves only between samples: drive it from a thread
        counts = {"echo": 0, "churn": 0, "reset": 0}
        stop = threading.Event()

        def pump():
            while not stop.is_set():
                sample_box.append(sample())

        sample_box: list = []
        warm_until = time.time() + 1.0
        pumper = threading.Thread(target=pump, daemon=True)
        pumper.start()
        loaders = [threading.Thread(target=_load, args=(port, warm_until, counts)) for _ in range(4)]
        for t in loaders:
            t.start()
        for t in loaders:
            t.join(30)
        time.sleep(0.5)
        settled = sample_box[-1]
        until = time.time() + SECONDS
        loaders = [threading.Thread(target=_load, args=(port, until, counts)) for _ in range(4)]
        for t in loaders:
            t.start()
        for t in loaders:
            t.join(SECONDS + 30)
        time.sleep(0.5)
        stop.set()
        pumper.join(10)
        end = sample_box[-1]
    finally:
        proc.stdin.close()
        proc.kill()
        proc.wait()
    assert counts["echo"] > 0 and counts["churn"] > 0 and counts["reset"] > 0, counts
    assert end["fds"] <= settled["fds"], (settled, end, counts)
    assert end["lua"] < settled["lua"] + (4 << 20), (settled, end, counts)
    assert end["rss"] < settled["rss"] + (24 << 20), (settled, end, counts)
    print(f"\nsoak {lua}: {counts}; settled {settled}; end {end}")
