#!/usr/bin/env python3
"""Where CPython's GIL spends a request: context switches and CPU per request, counted by
the kernel, for one point of gil_bench.py.

Starts gil_bench.py (T threads, W ms of work, held share H, K release points) in a child
process, and reads every one of its threads' /proc/<pid>/task/<tid>/status (voluntary and
involuntary context switches) and schedstat (CPU time, time waiting to run, runs) twice,
`--window` seconds apart in the middle of the run; divides the differences by the requests
completed meanwhile (the point's throughput × the window). A voluntary switch is a thread
going to sleep: a GIL waiter's timed wait, or a block on the GIL's mutex.

    python/.venv/bin/python python/gil_switches.py --threads 4 --release-points 1000

Linux only (/proc); the standard library only (gil_bench.py needs the venv's NumPy).
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def snapshot(pid):
    """Per thread: (voluntary, involuntary switches, CPU ns, run-queue wait ns, runs)."""
    out = {}
    for task in glob.glob("/proc/%d/task/*" % pid):
        try:
            with open(task + "/status") as f:
                st = dict(l.split(":", 1) for l in f.read().splitlines() if "ctxt_switches" in l)
            with open(task + "/schedstat") as f:
                cpu, wait, runs = (int(x) for x in f.read().split()[:3])
        except (OSError, ValueError):
            continue  # the thread ended between the listing and the read
        out[task] = (int(st["voluntary_ctxt_switches"]), int(st["nonvoluntary_ctxt_switches"]),
                     cpu, wait, runs)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=4, metavar="T")
    p.add_argument("--work-ms", type=float, default=5.0, metavar="W")
    p.add_argument("--held-share", type=float, default=0.82, metavar="H")
    p.add_argument("--release-points", type=int, default=1000, metavar="K")
    p.add_argument("--window", type=float, default=2.0, metavar="S",
                   help="seconds counted, in the middle of a run of 2·S + 5 s (default 2)")
    a = p.parse_args(argv)
    if not os.path.isdir("/proc/self/task"):
        print("gil_switches: needs Linux's /proc", file=sys.stderr)
        return 1
    if a.window <= 0 or a.window > 60:
        print("gil_switches: --window must be in (0, 60] s", file=sys.stderr)
        return 1
    run_s = 2 * a.window + 5
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "point.json")
        child = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "gil_bench.py"), "--threads", str(a.threads),
             "--work-ms", str(a.work_ms), "--held-share", str(a.held_share),
             "--release-points", str(a.release_points), "--requests", "1000000",
             "--max-seconds", str(run_s), "--out", out],
            stderr=subprocess.DEVNULL)
        try:
            time.sleep(run_s / 2 - a.window / 2)
            first = snapshot(child.pid)
            t0 = time.monotonic()
            time.sleep(a.window)
            second = snapshot(child.pid)
            window = time.monotonic() - t0
            if child.wait(timeout=run_s + 120) != 0:
                print("gil_switches: gil_bench.py failed", file=sys.stderr)
                return 1
        finally:
            if child.poll() is None:
                child.kill()
        with open(out) as f:
            result = json.load(f)
    point = result["points"][0] if "points" in result else result
    rps = point["throughput_rps"]
    total = [0] * 5
    for task, b in second.items():
        if task in first:
            total = [t + y - x for t, x, y in zip(total, first[task], b)]
    reqs = max(rps * window, 1e-9)
    print("T=%d K=%d H=%.2f: %.1f req/s; per request: %.1f voluntary switches, %.1f involuntary, "
          "%.2f ms of CPU, %.2f ms waiting for a core, %.1f runs"
          % (a.threads, a.release_points, a.held_share, rps, total[0] / reqs, total[1] / reqs,
             total[2] / reqs / 1e6, total[3] / reqs / 1e6, total[4] / reqs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
