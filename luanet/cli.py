"""The luanet command: `luanet run SCRIPT ...` and `luanet spec [PATH...]`."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .alloc import tune_malloc
from .bridge import LUA_MODULES

VERSIONS = ", ".join(LUA_MODULES)

USAGE = """\
usage: luanet run SCRIPT [ARGS...] [options]     (luanet run --help lists the options)
       luanet spec [PATH...] [--lua VERSION]    (luanet spec --help)
       luanet --version

  run    run a Lua script with `net` and `luanet`; keep serving while anything
         it opened is listening, connected or timing; Ctrl-C/SIGTERM delivers
         what was written, closes and exits 0
  spec   run busted-style *_spec.lua files (default: spec/)
"""

RUN_HELP = f"""\
usage: luanet run SCRIPT [ARGS...] [options]

Run a Lua script with `net` and `luanet` available, then keep serving while
anything it opened is listening, connected or timing (like `node server.js`).

Arguments:
  SCRIPT and ARGS   the script sees `arg` as the standalone lua sets it:
                    arg[0] the script, arg[1..n] ARGS, arg[-1], arg[-2], ...
                    what stood before the script ("run", "luanet"), and ARGS
                    also as the chunk's `...`.
                    luanet's own options (below) may stand before or after
                    SCRIPT; every other word after SCRIPT goes to the script.
                    A word starting with "-" that is not one of luanet's
                    options is an error (exit 2), so a mistyped option never
                    reaches the script silently; to hand the script words that
                    start with "-" (or that look like luanet's options), put
                    them after `--`:  luanet run tool.lua -- --verbose -n 3
                    ("-" alone and negative numbers are plain arguments).

Options:
  --lua VERSION         Lua to run: {VERSIONS} (default 5.4)
  --sandbox             run the script sandboxed, as LuaHost does by default
                        (and `luanet spec --sandbox`): no io, os.execute, C
                        modules, binary chunks, debug library; `require`
                        loads Lua source from --lua-path only (see "Why
                        unsandboxed" below)
  --bind ADDRESS        every listen() binds only this address: 127.0.0.1, ::1
                        or a host name such as localhost (resolved once at
                        start; its IPv4 address is preferred)
  --lua-path TEMPLATES  where `require` looks for Lua files, `;`-separated
                        package.path templates (default: the script's folder,
                        DIR/?.lua;DIR/?/init.lua)
  --time-limit SECONDS  CPU seconds any one handler, timer or callback may run
                        before it is stopped with a Lua error (default: none)
  --max-memory BYTES    memory budget for the script: Lua heap plus bytes held
                        in read and write buffers; suffixes k, M, G (powers of
                        1024), e.g. 64M (default: none)
  --read-buffer-size BYTES
                        default read_buffer_size of every socket (bytes read
                        ahead and held for the script; 0 = no limit, the
                        default); suffixes k, M, G
  --grace SECONDS       on Ctrl-C/SIGTERM, how long to keep delivering what
                        the script wrote before closing (default 10)
  --watch               re-run the script from scratch (everything it opened is
                        closed first) whenever it or a Lua module it required
                        changes on disk; errors are printed and the next
                        change is awaited
  --workers N           run N processes, each with its own Lua state, sharing
                        the script's listening ports (SO_REUSEPORT, as nginx);
                        the script must listen on a fixed port. Each worker
                        sees LUANET_WORKER (1..N) in its environment
  --version             print luanet's version and exit
  -h, --help            print this help and exit
  --                    everything after it is SCRIPT (if not given yet) and
                        the script's arguments, taken as they are

Signals:
  The first Ctrl-C or SIGTERM stops accepting, keeps sending what the script
  wrote until every byte is delivered or --grace runs out, closes everything
  and exits 0. If bytes had to be discarded at the end of the grace, it says
  how many bytes to how many peers on stderr and exits 1. A script that drives
  its own loop (luanet.run_for/run_until) gets the error `interrupted` from
  them, so it ends and the same clean shutdown runs. A second signal, or a
  script stuck in its own Lua code for 3 s after the first one, ends the
  process at once with exit 130 and a message.

Exit status: 0 after a clean stop or when nothing is left open; 1 after a Lua
error in the script's top level (message with file:line on stderr) or when
bytes were discarded at shutdown; 2 for a usage error; 130 when ended at once.

Why unsandboxed:
  `luanet run` runs a script you chose to run, like `lua script.lua` or
  `node server.js`: the script is trusted, and gets the whole standard library
  (io, os, package.path, LUA_PATH, C modules). So do `luanet spec` (like
  busted) and `luanet-lua`. LuaHost is sandboxed by default because a Python
  program that embeds plugins must not be reachable by the scripts it loads;
  `luanet spec --sandbox` tests a script the way such a host runs it. Use
  --sandbox (with --time-limit and --max-memory) to run a script you do not
  trust.
"""


class UsageError(Exception):
    """A command-line mistake: one line on stderr, exit 2."""


# ---------------------------------------------------------------- options
BYTE_SUFFIXES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_bytes(option: str, text: str, minimum: int) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(?:i?B)?\s*", text)
    if not match:
        raise UsageError(f"{option}: {text!r} is not a number of bytes (e.g. 65536, 512k, 64M, 1G)")
    value = int(match.group(1)) * BYTE_SUFFIXES[match.group(2).lower()]
    if value < minimum:
        raise UsageError(f"{option}: {text!r} must be at least {minimum}")
    return value


def parse_seconds(option: str, text: str, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 if positive else value >= 0) or value == float("inf"):
        kind = "a number of seconds > 0" if positive else "a number of seconds >= 0"
        raise UsageError(f"{option}: {text!r} is not {kind}")
    return value


def parse_workers(option: str, text: str) -> int:
    if not re.fullmatch(r"\d+", text) or not 1 <= int(text) <= 1024:
        raise UsageError(f"{option}: {text!r} is not a number of workers (1..1024)")
    return int(text)


@dataclass
class RunOptions:
    script: str
    args: List[str]
    before_script: List[str]        # the words before SCRIPT, for arg's negative indices
    lua: str = "5.4"
    sandbox: bool = False
    bind: Optional[str] = None
    lua_path: Optional[str] = None
    time_limit: Optional[float] = None
    max_memory: Optional[int] = None
    read_buffer_size: int = 0
    grace: float = 10.0
    watch: bool = False
    workers: int = 1
    reuse_port: bool = False        # set in the workers of --workers (by their parent)
    # the options as given (without --workers), to start workers with
    passed: List[str] = field(default_factory=list)


# option name -> (attribute, parser of its value or None for a flag)
_VALUE_OPTIONS: Dict[str, Tuple[str, Callable[[str, str], Any]]] = {
    "--lua": ("lua", lambda o, v: v),
    "--bind": ("bind", lambda o, v: v),
    "--lua-path": ("lua_path", lambda o, v: v),
    "--time-limit": ("time_limit", lambda o, v: parse_seconds(o, v, positive=True)),
    "--max-memory": ("max_memory", lambda o, v: parse_bytes(o, v, minimum=1)),
    "--read-buffer-size": ("read_buffer_size", lambda o, v: parse_bytes(o, v, minimum=0)),
    "--grace": ("grace", lambda o, v: parse_seconds(o, v, positive=False)),
    "--workers": ("workers", parse_workers),
}
_FLAG_OPTIONS = {"--sandbox": "sandbox", "--watch": "watch"}
_NEGATIVE_NUMBER = re.compile(r"-\d+(\.\d*)?([eE][-+]?\d+)?|-\.\d+")


class HelpRequested(Exception):
    pass


class VersionRequested(Exception):
    pass


def parse_run_args(argv: Sequence[str]) -> RunOptions:
    """luanet's options may stand anywhere before `--`; the first other word
    is SCRIPT, the other words are the script's arguments (see RUN_HELP)."""
    values: Dict[str, Any] = {}
    passed: List[str] = []
    positional: List[str] = []
    before_script: List[str] = []
    words = list(argv)
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            positional.extend(words[i:])
            break
        if not word.startswith("-") or word == "-" or _NEGATIVE_NUMBER.fullmatch(word):
            positional.append(word)
            continue
        if not positional:
            before_script.append(word)
        name, eq, value = word.partition("=")
        if name in ("-h", "--help") and not eq:
            raise HelpRequested()
        if name == "--version" and not eq:
            raise VersionRequested()
        if name in _FLAG_OPTIONS:
            if eq:
                raise UsageError(f"option {name} takes no value")
            values[_FLAG_OPTIONS[name]] = True
            passed.append(name)
        elif name in _VALUE_OPTIONS:
            if not eq:
                if i >= len(words):
                    raise UsageError(f"option {name} needs a value")
                value = words[i]
                i += 1
                if not positional:
                    before_script.append(value)
            attribute, parse = _VALUE_OPTIONS[name]
            values[attribute] = parse(name, value)
            if name != "--workers":
                passed.extend([name, value])
        else:
            raise UsageError(f"unknown option {name} (luanet run --help lists the options; "
                             "put the script's own options after --)")
    if not positional:
        raise UsageError("no SCRIPT given (usage: luanet run SCRIPT [ARGS...] [options])")
    options = RunOptions(script=positional[0], args=positional[1:], before_script=before_script,
                         passed=passed, **values)
    if options.lua not in LUA_MODULES:
        raise UsageError(f"unknown Lua version {options.lua!r}; choose one of {VERSIONS}")
    if options.bind is not None:
        options.bind = resolve_bind_address(options.bind)
    if options.lua_path is None:
        folder = os.path.dirname(os.path.abspath(options.script))
        options.lua_path = f"{folder}{os.sep}?.lua;{folder}{os.sep}?{os.sep}init.lua"
    return options


def resolve_bind_address(name: str) -> str:
    """A numeric address as it is; a host name resolved once, IPv4 first
    (what clients that are told `localhost` try first on most systems)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, name.split("%", 1)[0])
            return name
        except OSError:
            pass
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"--bind: cannot resolve {name!r}: {exc.strerror}") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0])


def version_text() -> str:
    from . import __version__, _compiled
    try:
        from importlib.metadata import version
        lupa = f", lupa {version('lupa')}"
    except Exception:
        lupa = ""
    core = "compiled" if _compiled.ACTIVE else "pure Python"
    return f"luanet {__version__} (Python {sys.version.split()[0]}{lupa}; Lua {VERSIONS}; {core})"


# ---------------------------------------------------------------- messages
def _prefix() -> str:
    worker = os.environ.get("LUANET_WORKER")
    return f"luanet[worker {worker}]" if worker else "luanet"


def say(text: str) -> None:
    sys.stderr.write(f"{_prefix()}: {text}\n")
    sys.stderr.flush()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ---------------------------------------------------------------- signals
class SignalWatch:
    """Ctrl-C and SIGTERM for `luanet run`, taken by a thread (sigwait), not by
    the event loop: they must work even when the script's Lua code never
    returns to the loop (`while true do end`), where a loop's signal handler
    would never run.

    The first signal interrupts the host (luanet.run_for/run_until raise
    `interrupted` from then on, so a script driving its own loop ends) and
    asks its loop to stop; the clean shutdown (stop accepting, deliver, close)
    follows. The main thread or the loop acknowledges the request; if neither
    has within STUCK seconds, the script is stuck in its own Lua code and the
    process exits at once with 130. A second signal exits at once too."""

    STUCK = 3.0
    TELL_AFTER = 1.0  # closing for longer than this after the signal: say so
    EXIT_AT_ONCE = 130
    SIGNALS = {signal.SIGINT, signal.SIGTERM}

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.fired = threading.Event()
        self._taken = threading.Event()
        self._lock = threading.Lock()
        self._host: Any = None
        signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)  # only the thread gets them
        threading.Thread(target=self._watch, name="luanet-signals", daemon=True).start()

    def attach(self, host: Any) -> None:
        """The host a signal interrupts from now on (None: none is running)."""
        with self._lock:
            self._host = host
        if host is not None and self.fired.is_set():
            self._interrupt(host)

    def acknowledge(self) -> None:
        """The main thread has seen the request: not stuck."""
        self._taken.set()

    def _interrupt(self, host: Any) -> None:
        try:
            host.interrupt()
            host.loop.call_soon_threadsafe(self._stop_in_loop, host)
        except Exception:  # the host or its loop is closed: the main thread is past it
            self._taken.set()

    def _watch(self) -> None:
        signal.sigwait(self.SIGNALS)
        self.fired.set()
        with self._lock:
            host = self._host
        if host is None:
            self._taken.set()
        else:
            self._interrupt(host)
        first = time.monotonic()
        told = False
        while True:
            if signal.sigtimedwait(self.SIGNALS, 0.25) is not None:
                say("second interrupt: exiting at once, without waiting for the rest to be "
                    "delivered" if self._taken.is_set() else "second interrupt: exiting at once")
                break
            waited = time.monotonic() - first
            if not self._taken.is_set() and waited > self.STUCK:
                say(f"interrupted, but the script's Lua code has not returned to the event loop "
                    f"for {self.STUCK:g} s: exiting without closing")
                break
            if (self._taken.is_set() and not told and waited > self.TELL_AFTER
                    and self.grace > 2 * self.TELL_AFTER):
                # closing takes a while: say why, and how to cut it short
                say(f"stopping: delivering what the script wrote (up to {self.grace:g} s, "
                    "--grace); interrupt again to exit at once")
                told = True
        sys.stdout.flush()
        os._exit(self.EXIT_AT_ONCE)

    def _stop_in_loop(self, host: Any) -> None:
        self._taken.set()
        host.stop()


# ---------------------------------------------------------------- one run
WATCH_POLL = 0.3

# Installed before the script under --watch: records the names given to
# require (also failed ones, so a broken module is watched too); returns a
# function that lists them. Python keeps that function; the script never sees it.
_REQUIRE_RECORDER = b"""
local real_require, seen, list = require, {}, {}
require = function(name, ...)
  if type(name) == "string" and not seen[name] then seen[name] = true; list[#list + 1] = name end
  return real_require(name, ...)
end
return function() return table.concat(list, "\\n") end
"""


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def module_files(names: Sequence[str], templates: Sequence[str]) -> List[Path]:
    """The files `require` finds for these module names, as package.searchpath does."""
    found = []
    for name in names:
        stem = name.replace(".", os.sep)
        for template in templates:
            if template and "?" in template:
                candidate = Path(template.replace("?", stem))
                if candidate.is_file():
                    found.append(candidate)
                    break
    return found


def _stamp(path: Path) -> Optional[Tuple[int, int]]:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class FileWatch:
    """The script and the modules it required, polled by modification time
    and size. A file first seen after the run started (a module required
    later, from a handler) counts as changed if it was modified after the
    start, so an edit made just before it was noticed is not missed."""

    CHANGED = (-1, -1)

    def __init__(self, paths: Sequence[Path]):
        self.since = time.time_ns()
        self.stamps = {path: _stamp(path) for path in paths}

    def changed(self) -> Optional[Path]:
        for path, stamp in self.stamps.items():
            if stamp == self.CHANGED or _stamp(path) != stamp:
                return path
        return None

    def add(self, paths: Sequence[Path]) -> None:
        for path in paths:
            if path not in self.stamps:
                stamp = _stamp(path)
                self.stamps[path] = (self.CHANGED if stamp is not None and stamp[0] > self.since
                                     else stamp)


@dataclass
class Outcome:
    code: int                      # exit status if we stop now
    changed: Optional[Path] = None  # --watch: the file whose change ended this run


def make_host(opts: RunOptions) -> Any:
    from .host import LuaHost

    extra: Dict[str, Any] = {"reuse_port": True} if opts.reuse_port else {}  # a worker of --workers
    return LuaHost(lua=opts.lua, sandbox=opts.sandbox, bind_address=opts.bind,
                   event_loop="auto", max_memory=opts.max_memory,
                   handler_time_limit=opts.time_limit, read_buffer_size=opts.read_buffer_size,
                   lua_path=opts.lua_path, **extra)


def _arg_table(host: Any, opts: RunOptions) -> Any:
    words = ["luanet", "run"] + opts.before_script
    entries: Dict[int, bytes] = {i - len(words): os.fsencode(w) for i, w in enumerate(words)}
    entries[0] = os.fsencode(opts.script)
    for i, a in enumerate(opts.args, 1):
        entries[i] = os.fsencode(a)
    return host.table(entries)


_INTERRUPTED = re.compile(r"(^|: )interrupted$")


def run_once(opts: RunOptions, watch: Optional[SignalWatch],
             files: Optional[FileWatch] = None) -> Outcome:
    """Run the script in a fresh host until it is idle, interrupted or (with
    files) one of the watched files changes; close the host; the outcome."""
    try:
        host = make_host(opts)
    except (OSError, ValueError, TypeError) as exc:
        say(str(exc))
        return Outcome(1)
    try:
        if watch is not None:
            watch.attach(host)
        outcome = _run_in(host, opts, watch, files)
    except BaseException:
        if watch is not None:
            watch.attach(None)
        host.close(grace=0)
        raise
    if watch is not None:
        watch.attach(None)
    interrupted = watch is not None and watch.fired.is_set()
    closed = _close(host, opts, reloading=files is not None and not interrupted)
    return Outcome(outcome.code or closed, outcome.changed)


def _run_in(host: Any, opts: RunOptions, watch: Optional[SignalWatch],
            files: Optional[FileWatch]) -> Outcome:
    from .host import LuaError

    host.globals["arg"] = _arg_table(host, opts)
    names_of_required: Any = None
    templates = [t for t in (opts.lua_path or "").split(";") if t]
    if files is not None:
        names_of_required = host.execute(_REQUIRE_RECORDER, name="=luanet-watch")
        if not opts.sandbox:
            templates += [t for t in _text(host.eval("package.path")).split(";") if t]

    def required() -> List[Path]:
        if names_of_required is None:
            return []
        names = [n for n in _text(names_of_required()).split("\n") if n]
        return module_files(names, templates)

    code = 0
    try:
        host.execute_file(opts.script, *[os.fsencode(a) for a in opts.args])
    except LuaError as exc:
        if not (watch is not None and watch.fired.is_set() and _INTERRUPTED.search(exc.message)):
            say(exc.message)
            if exc.traceback:
                sys.stderr.write(exc.traceback + "\n")
            code = 1
    except OSError as exc:
        say(f"cannot open {opts.script}: {exc.strerror}")
        code = 1
    interrupted = watch is not None and watch.fired.is_set()
    if interrupted:
        watch.acknowledge()  # type: ignore[union-attr]
    if files is not None:
        files.add(required())
    if code or interrupted:
        return Outcome(code)
    return Outcome(0, _serve(host, files, required))


def _serve(host: Any, files: Optional[FileWatch],
           required: Callable[[], List[Path]]) -> Optional[Path]:
    """Serve until idle or stopped; with files, until one of them changes too
    (returns it)."""
    changed: List[Path] = []
    if files is not None:
        def poll() -> None:
            files.add(required())
            path = files.changed()
            if path is not None:
                changed.append(path)
                host.stop()
            else:
                host.loop.call_later(WATCH_POLL, poll)
        host.loop.call_later(WATCH_POLL, poll)
    host.serve_forever(until_idle=True)
    return changed[0] if changed else None


def _close(host: Any, opts: RunOptions, reloading: bool) -> int:
    """Close the host, letting what was written flush for the grace (a short
    one before a --watch reload); report discarded bytes. 1 if any were."""
    grace = min(opts.grace, 1.0) if reloading else opts.grace
    discarded = host.close(grace=grace)
    if discarded:
        peers = host.discarded_peers
        say(f"{_plural(discarded, 'byte')} to {_plural(peers, 'peer')} could not be delivered "
            f"within the {grace:g} s grace and were discarded")
        return 1
    return 0


class _OnePrefix(logging.Formatter):
    """Log lines with one `luanet:` prefix (`luanet[worker N]:` in a worker),
    whether or not the message brings its own."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for own in ("luanet: ", "luanet:"):
            if text.startswith(own):
                text = text[len(own):]
                break
        return f"{_prefix()}: {text}"


def _not_the_hosts_discard_line(record: logging.LogRecord) -> bool:
    # _close says it with the --grace wording; the host's own line would double it
    text = record.getMessage()
    return not ("discarded" in text and "unsent" in text)


def run_script(opts: RunOptions) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OnePrefix("%(message)s"))
    handler.addFilter(_not_the_hosts_discard_line)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    tune_malloc()  # this process is ours: keep bulk buffers in the heap (see alloc.py)
    # POSIX: signals through a thread; elsewhere serve_forever's own handlers
    watch = SignalWatch(opts.grace) if hasattr(signal, "pthread_sigmask") else None
    if not opts.watch:
        return run_once(opts, watch).code
    return watch_loop(opts, watch)


def watch_loop(opts: RunOptions, watch: Optional[SignalWatch]) -> int:
    script = Path(opts.script)
    known: List[Path] = [script]
    while True:
        # what earlier runs required is watched from the start of this one
        files = FileWatch(known)
        outcome = run_once(opts, watch, files)
        if watch is not None and watch.fired.is_set():
            return outcome.code
        known = list(files.stamps)
        changed = outcome.changed
        if changed is None:
            state = "failed" if outcome.code else "finished"
            say(f"{opts.script} {state}; waiting for a change to restart (Ctrl-C to quit)")
            while changed is None:
                if watch is not None:
                    if watch.fired.wait(WATCH_POLL):
                        watch.acknowledge()
                        return 0
                else:
                    time.sleep(WATCH_POLL)
                changed = files.changed()
        say(f"{_display(changed)} changed: restarting {opts.script}")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- workers
class Workers:
    """`--workers N`: N `luanet run` processes of the same script, each with
    its own Lua state, listening on the same ports with SO_REUSEPORT so the
    kernel spreads connections over them. Each runs in its own process group
    so that a Ctrl-C in the terminal reaches only this parent, which hands
    one SIGTERM to every worker (a second signal: a second SIGTERM, so they
    all exit at once)."""

    def __init__(self, opts: RunOptions):
        self.opts = opts
        self.procs: List[subprocess.Popen[bytes]] = []

    def command(self) -> List[str]:
        return ([sys.executable, "-m", "luanet", "run"] + self.opts.passed + ["--", self.opts.script]
                + self.opts.args)

    def start(self) -> None:
        for n in range(1, self.opts.workers + 1):
            env = dict(os.environ, LUANET_WORKER=str(n), LUANET_WORKERS=str(self.opts.workers),
                       LUANET_REUSE_PORT="1")
            self.procs.append(subprocess.Popen(self.command(), env=env, process_group=0,
                                               preexec_fn=_die_with_parent))

    def run(self) -> int:
        signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        self.start()
        received = 0
        while any(p.poll() is None for p in self.procs):
            sig = signal.sigtimedwait(signals, 0.2)
            if sig is None:
                continue
            received += 1
            if received == 2:
                say("second interrupt: ending every worker at once")
            for p in self.procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
        codes = [p.wait() for p in self.procs]
        for n, code in enumerate(codes, 1):
            if code != 0 and received == 0:
                say(f"worker {n} (pid {self.procs[n - 1].pid}) exited with {code}")
        if any(c < 0 or c >= 128 for c in codes):
            return SignalWatch.EXIT_AT_ONCE
        return max(codes)


def _die_with_parent() -> None:
    """In a worker, before exec: SIGTERM when the parent dies (Linux), so
    workers never outlive a killed parent."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass


# ---------------------------------------------------------------- main
def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(USAGE, end="", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if command in ("--version", "-v", "version"):
        print(version_text())
        return 0
    try:
        if command == "run":
            try:
                opts = parse_run_args(rest)
            except HelpRequested:
                print(RUN_HELP, end="")
                return 0
            except VersionRequested:
                print(version_text())
                return 0
            except UsageError as exc:
                sys.stderr.write(f"luanet run: error: {exc}\n")
                return 2
            # a worker started by Workers: taken out so the script's own children do not inherit it
            opts.reuse_port = os.environ.pop("LUANET_REUSE_PORT", None) == "1"
            if opts.workers > 1:
                return Workers(opts).run()
            return run_script(opts)
        if command == "spec":
            from .spec import main as spec_main
            return spec_main(rest)
        raise UsageError(f"unknown command {command!r} (choose run or spec; luanet --help)")
    except UsageError as exc:
        sys.stderr.write(f"luanet: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
