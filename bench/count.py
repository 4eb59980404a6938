"""User-space instructions per round, counted by valgrind's callgrind.

    python bench/count.py [--loops asyncio,uvloop] [--scenarios echo,churn,bulk]
                          [--lua 5.4|luajit|...] [--b luanet|lupa]
                          [--only asyncio|luanet|lupa] [--keep DIR]

Wall-clock figures on a shared 2-core machine move by 15 to 30% between two
runs of the same server (see RESULTS.md, the A/A table). Instruction counts do
not: callgrind counts what the server process executes in user space, the
same for the same code whatever else the machine is doing. That is the figure
to watch when changing a hot path. It leaves out the kernel (syscalls, page
faults), which is most of a plain asyncio echo's cost, so these ratios are
larger than run.py's: they show what luanet adds, not what a round costs.

Each server runs under callgrind with instrumentation switched on only while
the load generator runs; the count is divided by the rounds (echo, churn) or
MiB (bulk) the load generator reports. Under callgrind the server is about 50x
slower, so the load generator completes fewer rounds than in run.py.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import run

SECONDS = 5  # per echo/churn count
BULK_MIB = 64


def count(impl, loop, scenario, lua="5.4", keep=None):
    out = keep or tempfile.NamedTemporaryFile(prefix=f"callgrind-{impl}-", suffix=".out", delete=False).name
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
           run.PY, os.path.join(run.BENCH, run.SERVERS[impl]), "--loop", loop]
    if impl in run.LUA_SERVERS:
        cmd += ["--lua", lua]
    server = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, cwd=run.BENCH)
    try:
        port = int(run.Lines(server.stdout, "server").readline(120))
        args = {"echo": ["-n", "50", "-t", str(SECONDS)], "churn": ["-n", "20", "-t", str(SECONDS)],
                "bulk": ["-n", "4", "-m", str(BULK_MIB)]}[scenario]
        lg = subprocess.Popen([run.LOADGEN, scenario, str(port), *args],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        gen = run.Lines(lg.stdout, "loadgen")
        if gen.readline(120) != "ready":
            raise run.Failure("loadgen: unexpected output")
        control(server.pid, "on")
        lg.stdin.write(b"go\n")
        lg.stdin.flush()
        res = json.loads(gen.readline(SECONDS + 600))
        control(server.pid, "off")
        lg.stdin.write(b"go\n")
        lg.stdin.close()
        lg.wait(60)
        server.stdin.write(b"quit\n")
        server.stdin.close()
        server.wait(120)
        total = instructions(out)
    finally:
        run.kill(server)
        if not keep:
            os.unlink(out)
    per = res["rounds"] if scenario != "bulk" else res["bytes"] / 2**20
    return total / per


def control(pid, state):
    subprocess.run(["callgrind_control", "-i", state, str(pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def instructions(path):
    # "totals:" closes the profile; the "summary:" line near the top stays 0
    # when instrumentation starts switched off
    total = None
    with open(path) as f:
        for line in f:
            m = re.match(r"totals:\s+(\d+)", line)
            if m:
                total = int(m.group(1))
    if not total:
        raise run.Failure(f"no instructions counted in {path}")
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loops", default="asyncio,uvloop")
    ap.add_argument("--scenarios", default="echo,churn,bulk")
    ap.add_argument("--lua", default="5.4", help="Lua of the luanet server (5.4, luajit, ...)")
    ap.add_argument("--b", default="luanet", choices=run.LUA_SERVERS,
                    help="the side set beside asyncio (lupa: the lupa floor, bench/lupa_echo.py)")
    ap.add_argument("--only", choices=("asyncio", *run.LUA_SERVERS),
                    help="count one side only (luanet or lupa: that one as side B)")
    ap.add_argument("--keep", metavar="DIR", help="keep the callgrind profiles in DIR "
                    "(callgrind_annotate them to see where the instructions go)")
    opts = ap.parse_args()
    if opts.only in run.LUA_SERVERS:
        opts.b = opts.only
    if opts.keep:
        os.makedirs(opts.keep, exist_ok=True)
    if not shutil.which("valgrind"):
        sys.exit("count.py needs valgrind (apt-get install valgrind)")
    run.build_loadgen()
    run.raise_fd_limit()
    print(f"{'loop':8} {'scenario':8} {'unit':18} {'asyncio':>10} {opts.b:>10} {'ratio':>6}")
    for loop in opts.loops.split(","):
        for sc in opts.scenarios.split(","):
            def keep(impl, loop=loop, sc=sc):
                return os.path.join(opts.keep, f"{impl}-{loop}-{sc}.out") if opts.keep else None
            a = count("asyncio", loop, sc, keep=keep("asyncio")) if opts.only in (None, "asyncio") else None
            b = (count(opts.b, loop, sc, opts.lua, keep=keep(f"{opts.b}-{opts.lua}"))
                 if opts.only != "asyncio" else None)
            unit = "Ir/MiB" if sc == "bulk" else "Ir/round"
            ratio = f"{b / a:6.2f}" if a and b else "     -"
            print(f"{loop:8} {sc:8} {unit:18} {a or 0:10.0f} {b or 0:10.0f} {ratio}", flush=True)


if __name__ == "__main__":
    main()
