"""Minimal sequences the stateful fuzzer found (or that issue 9 reported),
replayed on every run by tests/test_fuzz_stateful.py.

Each entry: a name, the violation class it showed, the steps (see
stateful.gen_steps for their meaning), `bug` (what went wrong), and
`open`: True while the bug is not fixed (the test is then
xfail(strict=True), so a fix shows up as XPASS: set open to False).
"""

REGRESSIONS = [
    {
        "name": "write-while-connecting-then-disconnect-reaches-next-peer",
        "cls": "received-not-prefix",
        "steps": [["connect", "c0", "L0", None], ["write", "c0", 10, False, False], ["disconnect", "c0"],
                  ["run", 0.02], ["connect", "c0", "L1", None], ["run", 0.05]],
        "bug": "issue 9: bytes written while connecting, then disconnect(), were sent on the next "
               "connection to another peer",
        "open": False,
    },
    {
        "name": "abort-while-connecting-runs-disconnected",
        "cls": "disconnected-never-connected",
        "steps": [["connect", "c0", "L0", None], ["abort", "c0"], ["run", 0.05]],
        "bug": "issue 9: abort() while connecting ran disconnected_handler (Qt does not)",
        "open": False,
    },
    {
        "name": "disconnect-while-connecting-cancels",
        "cls": "disconnected-never-connected",
        "steps": [["connect", "c0", "L0", None], ["disconnect", "c0"], ["run", 0.05]],
        "bug": "issue 9: disconnect() while connecting cancelled the attempt (Qt completes it, then closes)",
        "open": False,
    },
    {
        "name": "abort-connected-then-disconnected-handler",
        "cls": "event-after-abort",
        "steps": [["connect", "c0", "L0", None], ["run", 0.02], ["abort", "c0"], ["run", 0.02]],
        "bug": "issue 9: events of a connection after its abort() (its own single disconnected_handler "
               "excepted: Qt runs disconnected() inside abort() of a connected socket)",
        "open": False,
    },
    {
        "name": "connect-bad-port-drops-unread-input",
        "cls": "read-lost-bytes",
        "steps": [["connect", "c0", "L0", None], ["run", 0.02], ["psend", 0, 10], ["run", 0.02],
                  ["connect", "c0", "p65536", None], ["run", 0.05]],
        "bug": "issue 9: a connect() that fails its argument check (port 65536) empties the unread input",
        "open": False,
    },
    {
        "name": "close-twice-runs-about-to-close-twice",
        "cls": "about-to-close-twice",
        "steps": [["connect", "c0", "L0", None], ["run", 0.02], ["close", "c0"], ["close", "c0"],
                  ["run", 0.05]],
        "bug": "issue 9: close() twice ran about_to_close_handler twice",
        "open": False,
    },
    {
        "name": "open-mode-10-raises-python-error",
        "cls": "error-not-string",
        "steps": [["connect", "c0", "L0", 10], ["run", 0.02]],
        "bug": "issue 11: connect(host, port, 10) raised a Python ValueError (userdata) into Lua",
        "open": False,
    },
    # found by the stateful fuzzer at 10:17 (tree at HEAD 70f1108), on 5.4, 5.1 and LuaJIT
    {
        "name": "close-in-host-found-handler",
        "cls": "disconnected-never-connected",
        "steps": [["handler", "c2", "host_found_handler", "close"], ["connect", "c2", "s0", 3],
                  ["run", 0.05]],
        "bug": "issue 9: close() inside host_found_handler: disconnected_handler without connected "
               "(API.md: the connection completes, then closes gracefully)",
        "open": False,
    },
    {
        "name": "disconnect-while-looking-up-then-reconnect-and-abort",
        "cls": "disconnected-twice",
        "steps": [["connect", "c1", "hnum", 3], ["disconnect", "c1"], ["connect", "c1", "s0", 3],
                  ["abort", "c1"], ["run", 0.05]],
        "bug": "issue 9: the disconnected_handler of an ended attempt runs for the next connection too",
        "open": False,
    },
    {
        "name": "open-mode-6-raises-python-error",
        "cls": "error-not-string",
        "steps": [["connect", "c1", "L0", 6], ["run", 0.02]],
        "bug": "issue 11: connect(host, port, 6) raises a Python ValueError (userdata) into Lua",
        "open": False,
    },
    {
        "name": "connect-while-connected-drops-unread-input",
        "cls": "read-lost-bytes",
        "steps": [["connect", "c1", "L0", None], ["pconnect", "s0"], ["run", 0.02], ["psend", 1, 1],
                  ["run", 0.005], ["connect", "c1", "REF", None], ["run", 0.05]],
        "bug": "issue 9: connect() on a connected socket fails (false) but empties its unread input",
        "open": False,
    },
    {
        "name": "stale-disconnected-then-write-accepted",
        "cls": "write-after-disconnected",
        "steps": [["connect", "c0", "L0", None], ["abort", "c0"], ["connect", "c0", "L1", 3], ["run", 0.001],
                  ["write", "c0", 70000, True, False], ["run", 0.05]],
        "bug": "issue 9: the aborted attempt's disconnected_handler runs during the new connection",
        "open": False,
    },
    {
        "name": "close-bind-close-runs-about-to-close-twice",
        "cls": "about-to-close-twice",
        "steps": [["connect", "c0", "L1", None], ["close", "c0"], ["bind", "c0", "0", False], ["close", "c0"],
                  ["run", 0.05]],
        "bug": "issue 9: close(), bind(), close() runs about_to_close_handler twice for one connection",
        "open": False,
    },
    {
        "name": "write-while-looking-up-then-close-reaches-next-peer",
        "cls": "received-not-prefix",
        "steps": [["connect", "c0", "hnum", 3], ["write", "c0", 10, False, False], ["close", "c0"],
                  ["connect", "c0", "L0", 3], ["run", 0.05]],
        "bug": "issue 9: bytes written while looking up, then close(), are sent on the next connection",
        "open": False,
    },
    {
        "name": "failed-connect-drops-input-then-later-bytes-arrive",
        "cls": "received-not-prefix",
        "steps": [["connect", "c0", "L1", None], ["pconnect", "s0"], ["run", 0.005], ["psend", 1, 20],
                  ["run", 0.001], ["connect", "c0", "pneg", 3], ["psend", 1, 20], ["run", 0.05]],
        "bug": "issue 9: a connect() that fails its argument check (port -1) empties the unread input, "
               "so what the script reads later is not what the peer sent",
        "open": False,
    },
    # found at 10:55 (working tree of 10:43) once the order of a remote close was checked
    {
        "name": "peer-closes-while-queued-error-before-bytes",
        "cls": "ready-read-after-remote-close",
        "steps": [["srv", "s0", "action", "none"], ["pconnect", "s0"], ["run", 0.02], ["psend", 0, 10],
                  ["pshut", 0], ["run", 0.05], ["take", "s0", False], ["run", 0.05]],
        "bug": "issue 9: a connection whose peer sent and closed while it was queued runs "
               "error_handler(REMOTE_HOST_CLOSED) before ready_read_handler (API.md: bytes first)",
        "open": False,
    },
    # found at 11:01 by the timer actions (luanet.after), working tree of 11:00
    {
        "name": "abort-from-timer-while-connecting-after-close",
        "cls": "disconnected-never-connected",
        "steps": [["handler", "c0", "about_to_close_handler", "later_abort"], ["connect", "c0", "s0", None],
                  ["close", "c0"], ["run", 0.05]],
        "bug": "issue 9: close() while looking up, then abort() from a timer while CONNECTING: "
               "disconnected_handler runs for a socket that never connected (API.md: none)",
        "open": False,
    },
    {
        "name": "abort-from-timer-while-connecting",
        "cls": "disconnected-never-connected",
        "steps": [["handler", "c2", "state_changed_handler", "later_abort"], ["connect", "c2", "s0", None],
                  ["run", 0.05]],
        "bug": "issue 9: abort() from a timer while CONNECTING runs disconnected_handler for a socket "
               "whose connected_handler never ran (API.md: none)",
        "open": False,
    },
    # found by the final 5.4 and 5.1 runs of the last stop (seed 12666)
    {
        "name": "close-in-bytes-written-handler-keeps-bytes-of-the-same-batch",
        "cls": "received-not-prefix",
        "steps": [["connect", "c0", "L1", None], ["connect", "c2", "L1", 3], ["run", 0.02], ["psend", 1, 20],
                  ["run", 0.001], ["handler", "c2", "bytes_written_handler", "close"], ["psend", 1, 500],
                  ["write", "c2", 100, False, False]],
        "bug": "close() in a handler dropped the unread bytes, but bytes travelling with a ready_read "
               "later in the same batch were still appended and read after close(): the script read "
               "the peer's second message without its first",
        "open": False,
    },
    # found by this stop's uvloop run (seed 35509); the same on asyncio's loop
    {
        "name": "short-read-of-a-collected-sockets-last-writes",
        "cls": "received-without-peer",
        "steps": [["pconnect", "s0"], ["connect", "c1", "s0", 15], ["write", "c1", 70000, False, False],
                  ["new", "c1"], ["run", 0.05], ["read", "a2", "read_string", 7, False], ["abort", "a2"]],
        "bug": "harness: a socket collected while connecting still delivers what it was given (API.md), "
               "and a read of 7 bytes held only the start of its tag, which the check did not "
               "recognise as the collected socket's (luanet was right)",
        "open": False,
    },
]
