"""A plugin that loops forever or eats memory is stopped, reported through
on_error, and the host keeps serving (LuaHost handler_time_limit, max_memory)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from luanet import LuaHost

from conftest import ALL_LUAS, DOC_ECHO, echo_once, in_thread, lua_int, wait_for

# A second server in the same host whose handler misbehaves once per connection.
BAD_SERVER = """
bad = net.TcpServer.new()
assert(bad:listen(0))
bad.new_connection_handler = function(srv)
    local s = srv:next_pending_connection()
    s.ready_read_handler = function(s)
        s:read_all_string()
        misbehave()
    end
end
"""

RUNAWAYS = {
    "plain loop": "function misbehave() while true do end end",
    "loop that catches errors": """function misbehave()
        while true do pcall(function() while true do end end) end
    end""",
    "loop in a coroutine": """function misbehave()
        coroutine.wrap(function() while true do end end)()
    end""",
}


# Runs in a child process, so that a limit that does not work makes the test
# fail on its timeout instead of hanging the suite.
CHILD = r"""
import json, socket, sys, threading
from luanet import LuaHost

def echo_once(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got

errors = []
lua, limits, source = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
host = LuaHost(lua=lua, bind_address="127.0.0.1", on_error=errors.append, **limits)
host.execute(source)
good, bad = int(host.eval("server.port")), int(host.eval("bad.port"))
threading.Thread(target=echo_once, args=(bad, b"trigger"), daemon=True).start()
host.run_until(lambda: errors, 20)
replies = []
t = threading.Thread(target=lambda: replies.append(echo_once(good, b"still here\n")), daemon=True)
t.start()
host.run_until(lambda: replies, 20)
print(json.dumps({"errors": errors, "reply": replies[0].decode() if replies else None}))
host.close()
"""


def serves_after_misbehaving(lua, limits, misbehave, expected):
    source = DOC_ECHO + BAD_SERVER + misbehave
    proc = subprocess.run([sys.executable, "-c", CHILD, lua, json.dumps(limits), source],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # the bad handler ran, was stopped and reported...
    assert len(result["errors"]) == 1, result
    assert expected in result["errors"][0], result
    # ...and the host still serves
    assert result["reply"] == "still here\n", result


@pytest.mark.parametrize("lua", ALL_LUAS)
@pytest.mark.parametrize("runaway", sorted(RUNAWAYS))
def test_runaway_handler_is_stopped_and_host_keeps_serving(lua, runaway):
    serves_after_misbehaving(lua, {"handler_time_limit": 0.2}, RUNAWAYS[runaway],
                             "stopped: ran longer than 0.2 s")


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_memory_eating_handler_is_stopped_and_host_keeps_serving(lua):
    serves_after_misbehaving(lua, {"max_memory": 32 << 20}, """function misbehave()
        local hoard = {}
        for i = 1, 1e9 do hoard[i] = string.rep("x", 4096) .. i end
    end""", "not enough memory")


def test_time_limit_leaves_ordinary_handlers_alone(make_host):
    host = make_host(handler_time_limit=0.5)
    host.execute(DOC_ECHO)
    port = lua_int(host, "server.port")
    for i in range(20):
        msg = b"message %d\n" % i
        assert wait_for(host, in_thread(echo_once, port, msg)) == msg


@pytest.mark.parametrize("kw", [{"max_memory": 0}, {"max_memory": -1}, {"max_memory": 1.5},
                                {"handler_time_limit": 0}, {"handler_time_limit": -2}])
def test_bad_limits_are_refused(kw):
    with pytest.raises(ValueError):
        LuaHost(**kw)
