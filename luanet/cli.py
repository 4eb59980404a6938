"""The luanet command: `luanet run SCRIPT ...` and `luanet spec [PATH...]`."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import List, Optional, Sequence

from .alloc import tune_malloc
from .bridge import LUA_MODULES

USAGE = """\
usage: luanet run SCRIPT [ARGS...] [--lua VERSION] [--sandbox] [--bind ADDRESS]
       luanet spec [PATH...] [--lua VERSION]

  run    run a Lua script with `net` and `luanet`; keep serving while anything
         it opened is listening or connected; Ctrl-C/SIGTERM closes and exits 0
  spec   run busted-style *_spec.lua files (default: spec/)

  --lua VERSION   one of: {versions} (default 5.4)
  --sandbox       no io, os.execute, C modules, binary chunks (as embedded hosts)
  --bind ADDRESS  every listen() binds only this address (e.g. 127.0.0.1)
  --              the rest of the line goes to the script as it is
""".format(versions=", ".join(LUA_MODULES))


class UsageError(Exception):
    pass


def parse_run_args(argv: Sequence[str]):
    """Options may stand anywhere (before `--`); the first other word is the
    script, the rest are its arguments."""
    lua, sandbox, bind = "5.4", False, None
    positional: List[str] = []
    it = iter(argv)
    for word in it:
        if word == "--":
            positional.extend(it)
            break
        if word in ("--lua", "--bind"):
            value = next(it, None)
            if value is None:
                raise UsageError(f"{word} needs a value")
            if word == "--lua":
                lua = value
            else:
                bind = value
        elif word.startswith("--lua="):
            lua = word.split("=", 1)[1]
        elif word.startswith("--bind="):
            bind = word.split("=", 1)[1]
        elif word == "--sandbox":
            sandbox = True
        elif word in ("-h", "--help"):
            raise UsageError("")
        else:
            positional.append(word)
    if not positional:
        raise UsageError("run needs a SCRIPT")
    if lua not in LUA_MODULES:
        raise UsageError(f"unknown Lua version {lua!r}; choose one of {', '.join(LUA_MODULES)}")
    return positional[0], positional[1:], lua, sandbox, bind


class SignalWatch:
    """Ctrl-C and SIGTERM for `luanet run`, taken by a thread (sigwait), not by
    the event loop: they must work even when the script's Lua code never
    returns to the loop (`while true do end`), where a loop's signal handler
    would never run. The first signal asks the loop to stop (stop accepting,
    flush, close, exit 0); if the loop has not taken that request within
    GRACE seconds, the script is stuck and the process exits at once with
    128 + the signal's number, as a shell reports an interrupted program. A
    second signal exits at once too."""

    GRACE = 3.0
    SIGNALS = {signal.SIGINT, signal.SIGTERM}

    def __init__(self, host):
        self.host = host
        self.fired = False
        self._taken = threading.Event()
        signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)  # only the thread gets them
        threading.Thread(target=self._watch, name="luanet-signals", daemon=True).start()

    def _watch(self) -> None:
        sig = signal.sigwait(self.SIGNALS)
        self.fired = True
        try:
            self.host.loop.call_soon_threadsafe(self._stop_in_loop)
        except RuntimeError:  # the loop is closed: we are on the way out anyway
            return
        again = signal.sigtimedwait(self.SIGNALS, self.GRACE)
        if again is None and self._taken.is_set():
            signal.sigwait(self.SIGNALS)  # closing normally; a second one still exits
        elif again is None:
            sys.stderr.write("luanet: interrupted, but the script's Lua code has not returned "
                             f"to the event loop for {self.GRACE:g} s: exiting without closing\n")
        sys.stderr.flush()
        os._exit(128 + sig)

    def _stop_in_loop(self) -> None:
        self._taken.set()
        self.host.stop()


def run_script(argv: Sequence[str]) -> int:
    from .host import LuaError, LuaHost

    script, args, lua, sandbox, bind = parse_run_args(argv)
    logging.basicConfig(level=logging.INFO, format="luanet: %(message)s", stream=sys.stderr)
    tune_malloc()  # this process is ours: keep bulk buffers in the heap (see alloc.py)
    try:
        host = LuaHost(lua=lua, sandbox=sandbox, bind_address=bind, event_loop="auto")
    except OSError as exc:
        print(f"luanet: {exc}", file=sys.stderr)
        return 1
    # POSIX: signals through a thread; elsewhere serve_forever's own handlers
    watch = SignalWatch(host) if hasattr(signal, "pthread_sigmask") else None
    try:
        arg = host._bridge.runtime.table_from(
            {i: a.encode() for i, a in enumerate([script] + list(args))})
        arg[-1] = b"luanet"
        host.globals["arg"] = arg
        try:
            host.execute_file(script, *[a.encode() for a in args])
        except LuaError as exc:
            print(f"luanet: {exc.message}", file=sys.stderr)
            if exc.traceback:
                print(exc.traceback, file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"luanet: cannot open {script}: {exc.strerror}", file=sys.stderr)
            return 1
        if watch is None or not watch.fired:  # Ctrl-C during the script's top level: done
            host.serve_forever(until_idle=True)
        return 0
    finally:
        host.close()  # stop accepting, flush what was written, close


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    try:
        if command == "run":
            return run_script(rest)
        if command == "spec":
            from .spec import main as spec_main
            return spec_main(rest)
        raise UsageError(f"unknown command {command!r}")
    except UsageError as exc:
        if str(exc):
            print(f"luanet: {exc}", file=sys.stderr)
        print(USAGE, end="", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
