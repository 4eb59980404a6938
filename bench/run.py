"""Runs the echo benchmarks: plain asyncio Protocol echo (A) against luanet (B).

    python bench/run.py [--quick] [--json PATH] [--loops asyncio,uvloop]
                        [--scenarios echo,churn,bulk,idle] [--b luanet|asyncio]

For each loop implementation (asyncio always, uvloop when importable) and each
scenario it runs A B A B, a fresh server process each time, and prints every
figure, the mean per side, and the ratio luanet/asyncio beside the target.
Benchmarks, not tests: nothing here fails because a target is missed; a run
fails only when a server is broken (wrong bytes, hang, crash, Lua error).

Figures, all measured by the server on itself (getrusage / statm), so the
load generator's speed does not enter them (bulk's MB/s is wall-clock):
  echo   server CPU per 64-byte round trip, 50 busy connections
  churn  server CPU per connection (connect, echo 64 bytes, close), 20 workers
  bulk   MB/s through the echo, 4 connections each streaming 64 MiB
  idle   server RSS growth per idle connection: 3000 connections, opened
         after a first 3000 held open (--idle-cold: into a fresh server)
"""

import argparse
import json
import os
import platform
import resource
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(BENCH, "build")
LOADGEN = os.path.join(BUILD, "loadgen")
PY = sys.executable
SERVERS = {"asyncio": "asyncio_echo.py", "luanet": "luanet_echo.py", "lupa": "lupa_echo.py"}
LUA_SERVERS = ("luanet", "lupa")  # these take --lua

# name: (unit, how the ratio luanet/asyncio must compare, goal of issue 13:
# one figure, or one per loop)
SCENARIOS = {
    "echo": ("us CPU/round", "<=", 1.15),
    "churn": ("us CPU/conn", "<=", {"asyncio": 1.3, "uvloop": 1.6}),
    "bulk": ("MB/s", ">=", 0.8),
    "idle": ("KiB RSS/conn", "<=", 1.5),
}


class Failure(Exception):
    pass


class Lines:
    """Line reader over a pipe with a timeout, so a hung process cannot hang us."""

    def __init__(self, f, who):
        self.fd, self.who, self.buf = f.fileno(), who, b""

    def readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise Failure(f"{self.who}: no answer within {timeout:.0f} s")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise Failure(f"{self.who}: exited or closed its output")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode().strip()


def build_loadgen():
    src = os.path.join(BENCH, "loadgen.c")
    if os.path.exists(LOADGEN) and os.path.getmtime(LOADGEN) >= os.path.getmtime(src):
        return
    os.makedirs(BUILD, exist_ok=True)
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        sys.exit("bench: needs a C compiler (gcc or cc) for bench/loadgen.c")
    subprocess.run([cc, "-O2", "-Wall", "-o", LOADGEN, src], check=True)


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def loadgen_args(scenario, opts):
    if scenario == "echo":
        return ["-n", "50", "-t", str(opts.seconds)]
    if scenario == "churn":
        return ["-n", "20", "-t", str(opts.seconds)]
    if scenario == "bulk":
        return ["-n", "4", "-m", str(opts.bulk_mib)]
    return ["-n", str(opts.idle_conns)]


def figure(scenario, res, s0, s1):
    cpu = s1["cpu"] - s0["cpu"]
    if scenario == "echo":
        return cpu / res["rounds"] * 1e6
    if scenario == "churn":
        return cpu / res["rounds"] * 1e6
    if scenario == "bulk":
        return res["bytes"] / res["seconds"] / 1e6
    return (s1["rss"] - s0["rss"]) / res["conns"] / 1024


def kill(proc):
    if proc and proc.poll() is None:
        proc.kill()
        proc.wait()


def tail(path, n=1500):
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return text[-n:].strip()


# --malloc tuned: both servers get the glibc settings `luanet run` applies to
# itself (luanet/alloc.py), through the environment, so the pair stays fair.
def server_env(opts):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if opts.malloc == "tuned":
        from luanet.alloc import MMAP_THRESHOLD, TRIM_THRESHOLD
        env.update(MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD), MALLOC_TRIM_THRESHOLD_=str(TRIM_THRESHOLD))
    return env


def run_one(impl, loop, scenario, opts):
    """One fresh server, one load-generator run; returns a dict of figures."""
    cmd = [PY, os.path.join(BENCH, SERVERS[impl]), "--loop", loop]
    if impl in LUA_SERVERS:
        cmd += ["--lua", opts.lua]
    rec = {"impl": impl, "loop": loop, "scenario": scenario}
    server = lg = None
    warm_procs = []
    with tempfile.NamedTemporaryFile("w+", prefix="bench-srv-", delete=False) as srv_err, \
         tempfile.NamedTemporaryFile("w+", prefix="bench-lg-", delete=False) as lg_err:
        try:
            server = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=srv_err, cwd=BENCH, env=server_env(opts))
            srv = Lines(server.stdout, f"{impl} server")

            def stats():
                server.stdin.write(b"stats\n")
                server.stdin.flush()
                return json.loads(srv.readline(30))

            port = int(srv.readline(60))

            def start_load():
                proc = subprocess.Popen([LOADGEN, scenario, str(port), *loadgen_args(scenario, opts)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=lg_err)
                out = Lines(proc.stdout, "loadgen")
                if out.readline(60) != "ready":
                    raise Failure("loadgen: unexpected output")
                return proc, out

            if scenario == "idle" and opts.idle_warm:
                # a first batch, held open, then the measured one: what a
                # connection costs once the server runs, not how much free
                # heap its start-up happened to leave for the first ones
                warm, warm_out = start_load()
                warm_procs.append(warm)
                warm.stdin.write(b"go\n")
                warm.stdin.flush()
                warm_out.readline(opts.seconds + 120)
                rec["warm_conns"] = opts.idle_conns
            lg, gen = start_load()
            s0 = stats()
            lg.stdin.write(b"go\n")
            lg.stdin.flush()
            res = json.loads(gen.readline(opts.seconds + 120))
            s1 = stats()
            lg.stdin.write(b"go\n")
            lg.stdin.close()
            lg.wait(30)
            if s1.get("lua_errors"):
                raise Failure(f"{s1['lua_errors']} Lua error(s) in the server's handlers")
            rec.update(value=figure(scenario, res, s0, s1), result=res,
                       server_cpu=s1["cpu"] - s0["cpu"], server_utime=s1["utime"] - s0["utime"],
                       server_stime=s1["stime"] - s0["stime"], rss_before=s0["rss"],
                       rss_after=s1["rss"], maxrss=s1["maxrss"], loop_reported=s1["loop"])
            server.stdin.write(b"quit\n")
            server.stdin.close()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                rec["note"] = "server did not exit within 15 s of quit"
        except (Failure, OSError, ValueError, subprocess.TimeoutExpired) as e:
            kill(lg)
            kill(server)
            msg = str(e)
            for who, path in (("loadgen", lg_err.name), ("server", srv_err.name)):
                t = tail(path)
                if t:
                    msg += f"\n  {who} stderr: " + t.replace("\n", "\n    ")
            rec["error"] = msg
        finally:
            kill(lg)
            for warm in warm_procs:
                kill(warm)
            kill(server)
            os.unlink(srv_err.name)
            os.unlink(lg_err.name)
    return rec


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    info = {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "kernel": platform.release(), "loadavg": open("/proc/loadavg").read().split()[:3]}
    for mod in ("lupa", "uvloop"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = None
    return info


def luanet_available():
    p = subprocess.run([PY, "-c", "from luanet import LuaHost"], capture_output=True,
                       text=True, cwd=os.path.dirname(BENCH))
    return None if p.returncode == 0 else (p.stderr.strip().splitlines() or ["?"])[-1]


def fmt(v):
    return "-" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.2f}")


def label(sc, opts):
    return {"echo": "echo 64 B x 50 conns", "churn": "churn x 20 workers",
            "bulk": f"bulk 4 x {opts.bulk_mib} MiB", "idle": f"idle {opts.idle_conns} conns"}[sc]


def summarize(runs, loops, scenarios, a, b):
    rows = []
    for loop in loops:
        for sc in scenarios:
            unit, cmp, target = SCENARIOS[sc]
            if isinstance(target, dict):
                target = target[loop]
            row = {"loop": loop, "scenario": sc, "unit": unit, "target": f"{cmp} {target}x"}
            for side in (a, b):
                vals = [r["value"] for r in runs if r["loop"] == loop and r["scenario"] == sc
                        and r["side"] == side and "value" in r]
                errs = [r["error"] for r in runs if r["loop"] == loop and r["scenario"] == sc
                        and r["side"] == side and "error" in r]
                row[side] = {"runs": vals, "mean": statistics.mean(vals) if vals else None,
                             "errors": errs}
                if sc in ("echo", "churn") and vals:
                    # the CPU figure's two parts: what the server's own code
                    # costs (user) and what the kernel does for it (system)
                    done = [r for r in runs if r["loop"] == loop and r["scenario"] == sc
                            and r["side"] == side and "value" in r]
                    for part in ("utime", "stime"):
                        row[side][part] = statistics.mean(
                            r[f"server_{part}"] / r["result"]["rounds"] * 1e6 for r in done)
            ma, mb = row[a]["mean"], row[b]["mean"]
            row["ratio"] = mb / ma if ma and mb is not None else None
            if row["ratio"] is not None:
                ok = row["ratio"] <= target if cmp == "<=" else row["ratio"] >= target
                row["meets"] = ok
            rows.append(row)
    return rows


def print_table(rows, a, b, opts):
    head = (f"{'loop':8} {'scenario':22} {'unit':13} {a + ' runs':>20} {a:>8} {b + ' runs':>20} {b:>8} "
            f"{'ratio':>6}  target")
    print(head)
    print("-" * len(head))
    for r in rows:
        runs_a = ",".join(fmt(v) for v in r[a]["runs"]) or "-"
        runs_b = ",".join(fmt(v) for v in r[b]["runs"]) or ("FAILED" if r[b]["errors"] else "-")
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        verdict = "" if "meets" not in r else ("  met" if r["meets"] else "  MISSED")
        print(f"{r['loop']:8} {label(r['scenario'], opts):22} {r['unit']:13} {runs_a:>20} "
              f"{fmt(r[a]['mean']):>8} {runs_b:>20} {fmt(r[b]['mean']):>8} {ratio:>6}  "
              f"{r['target']}{verdict}")
    split = [r for r in rows if "utime" in r[a] and "utime" in r[b]]
    if split:
        print("\nserver CPU, user + system, us per round or connection:")
        for r in split:
            print(f"{r['loop']:8} {r['scenario']:6} {a} {fmt(r[a]['utime'])} + {fmt(r[a]['stime'])}"
                  f"   {b} {fmt(r[b]['utime'])} + {fmt(r[b]['stime'])}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short run: 1 s phases, 16 MiB bulk, one A B pair")
    ap.add_argument("--json", metavar="PATH", help="also save machine, every run and the summary")
    ap.add_argument("--loops", default=None, help="comma list (default: asyncio, plus uvloop if importable)")
    ap.add_argument("--scenarios", default="echo,churn,bulk,idle")
    ap.add_argument("--b", default="luanet", choices=sorted(SERVERS),
                    help="side B (default luanet; 'asyncio' gives an A/A run that shows the noise; "
                         "'lupa' the lupa floor, bench/lupa_echo.py)")
    ap.add_argument("--reps", type=int, default=None, help="A B pairs per figure (default 2, quick 1)")
    ap.add_argument("--seconds", type=float, default=None, help="echo/churn phase length (default 4)")
    ap.add_argument("--bulk-mib", type=int, default=None, help="MiB per bulk connection (default 64)")
    ap.add_argument("--idle-conns", type=int, default=3000)
    ap.add_argument("--idle-cold", dest="idle_warm", action="store_false",
                    help="idle: measure the first connections of a fresh server "
                         "(default: a first batch held open, then the measured one)")
    ap.add_argument("--lua", default="5.4")
    ap.add_argument("--malloc", choices=("default", "tuned"), default="default",
                    help="glibc malloc settings of both servers: the defaults (what a program "
                         "embedding luanet gets) or those `luanet run` applies (luanet/alloc.py)")
    opts = ap.parse_args()
    opts.reps = opts.reps or (1 if opts.quick else 2)
    opts.seconds = opts.seconds or (1.0 if opts.quick else 4.0)
    opts.bulk_mib = opts.bulk_mib or (16 if opts.quick else 64)
    scenarios = [s for s in opts.scenarios.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            sys.exit(f"unknown scenario {s!r}")
    if opts.loops:
        loops = opts.loops.split(",")
    else:
        loops = ["asyncio"]
        try:
            import uvloop  # noqa: F401
            loops.append("uvloop")
        except ImportError:
            pass

    build_loadgen()
    raise_fd_limit()
    info = machine()
    # side labels; an A/A run (--b asyncio) labels its second server "asyncio-B"
    a, b = "asyncio", (opts.b if opts.b != "asyncio" else "asyncio-B")
    impl_of = {a: "asyncio", b: opts.b}
    sides = [a, b]
    print(f"machine: {info['nproc']} cores, {info['cpu']}, Linux {info['kernel']}, "
          f"Python {info['python']}, lupa {info['lupa']}, uvloop {info['uvloop']}, "
          f"load {' '.join(info['loadavg'])}")
    print(f"loops: {', '.join(loops)}   malloc: {opts.malloc}   order per figure: "
          + " ".join(sides * opts.reps))
    if b == "luanet":
        why = luanet_available()
        if why:
            print(f"luanet: not runnable here ({why}); running the asyncio baseline only")
            sides = [a]
    sys.stdout.flush()

    runs = []
    t0 = time.monotonic()
    for loop in loops:
        for sc in scenarios:
            for rep in range(opts.reps):
                for side in sides:
                    rec = run_one(impl_of[side], loop, sc, opts)
                    rec.update(side=side, rep=rep)
                    runs.append(rec)
                    if "error" in rec:
                        print(f"  FAILED {side} {loop} {sc} run {rep + 1}: {rec['error']}")
                    else:
                        extra = ""
                        if rec.get("loop_reported") != loop:
                            extra = f"  (server reports loop {rec['loop_reported']}!)"
                        if sc == "churn":
                            extra += f"  rss {(rec['rss_after'] - rec['rss_before']) / 1024:+.0f} KiB"
                        if sc == "bulk":
                            per_mib = rec['server_cpu'] / (rec['result']['bytes'] / 2**20)
                            extra += f"  {per_mib * 1e6:.0f} us CPU/MiB"
                        print(f"  {loop:7} {sc:5} {side:9} {fmt(rec['value']):>8} "
                              f"{SCENARIOS[sc][0]}{extra}")
                    sys.stdout.flush()
    print(f"\n({time.monotonic() - t0:.0f} s)  ratio = {b}/{a}; goals from issue 13\n")
    rows = summarize(runs, loops, scenarios, a, b)
    print_table(rows, a, b, opts)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"machine": info, "options": vars(opts), "runs": runs, "summary": rows},
                      f, indent=1)
        print(f"\nsaved {opts.json}")
    if any("error" in r for r in runs):
        print("\nsome runs FAILED (see above): their figures are missing, not zero")


if __name__ == "__main__":
    main()
