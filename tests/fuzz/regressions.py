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
        "bug": "issue 9: bytes written while connecting, then disconnect(), were sent on the next connection to another peer",
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
        "bug": "issue 9: disconnected_handler runs after abort() of a connected socket",
        "open": True,
    },
    {
        "name": "connect-bad-port-drops-unread-input",
        "cls": "read-lost-bytes",
        "steps": [["connect", "c0", "L0", None], ["run", 0.02], ["psend", 0, 10], ["run", 0.02],
                  ["connect", "c0", "p65536", None], ["run", 0.05]],
        "bug": "issue 9: a connect() that fails its argument check (port 65536) empties the unread input",
        "open": True,
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
]
