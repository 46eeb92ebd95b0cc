#!/usr/bin/env python3
"""How much CPU CPython's bytecode costs a thread right after it has slept.

A thread that waits for the GIL sleeps; while it sleeps its core runs other threads (or,
on a virtual machine, the host runs other guests on it) and its caches go cold. When it
takes the GIL again its first bytecode runs slower than the same bytecode back to back.
The simulator charges that as `cost.cold_start_us × (1 − e^(−wait / cost.cold_start_ms))`
of extra CPU, held under the GIL, at every take after a wait.

This measures it with the harness's own bytecode (`gil_bench.py`'s xorshift rounds): one
thread sleeps S ms, then runs U units of about 50 µs each, timed in its own CPU time; the
extra CPU of a run is what its units cost above the run's own steady unit (the median of
its second half), and a sleep's figure is the median over the runs of that extra, less the
same figure without a sleep (the timing's own overhead). The sleeps are interleaved, so a
machine whose speed drifts moves every sleep's runs alike. Then C and τ of
`C × (1 − e^(−S / τ))` are fitted to the sleeps' figures by least squares.

    python/.venv/bin/python python/cold_start.py                # prints the --set flags
    python/.venv/bin/python python/cold_start.py --json out.json
    python/.venv/bin/python python/cold_start.py --self-test

Only the standard library and gil_bench.py (beside this file) are used.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SLEEPS_MS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
UNIT_US = 50.0
UNITS = 16


def harness():
    """What cold_start.py takes from gil_bench.py: its bytecode, its calibration of it, and
    its reading of the machine's busy and stolen CPU time."""
    from gil_bench import XORSHIFT_SEED, _spin, calibrate_bytecode, machine_cpu_s
    return XORSHIFT_SEED, _spin, calibrate_bytecode, machine_cpu_s


def run_extra(spin_fn, rounds, sleep_ms, state):
    """One run: sleep, then UNITS units; returns (extra CPU ns, state)."""
    clk = time.thread_time_ns
    if sleep_ms > 0:
        time.sleep(sleep_ms / 1e3)
    t = [clk()]
    s = state
    for _ in range(UNITS):
        s = spin_fn(rounds, s)
        t.append(clk())
    d = [b - a for a, b in zip(t, t[1:])]
    steady = statistics.median(d[UNITS // 2:])
    return sum(x - steady for x in d[: UNITS // 2]), s


def fit(points):
    """C (µs) and τ (ms) of C·(1 − e^(−S/τ)), least squares over log-spaced τ from 0.01 ms
    to the longest sleep: a figure still rising at the longest sleep cannot tell how high it
    would go, and a τ beyond it would extrapolate C from a straight line."""
    best = None
    longest = max(s for s, _ in points)
    for i in range(241):
        tau = 0.01 * 10 ** (i / 40.0)  # 0.01 ms … 10 s
        if tau > longest * (1 + 1e-9):
            break
        f = [1.0 - math.exp(-s / tau) for s, _ in points]
        den = sum(x * x for x in f)
        if den <= 0:
            continue
        c = max(0.0, sum(x * y for x, (_, y) in zip(f, points)) / den)
        sse = sum((c * x - y) ** 2 for x, (_, y) in zip(f, points))
        if best is None or sse < best[0]:
            best = (sse, c, tau)
    return best[1], best[2]


def measure(reps):
    s, spin_fn, calibrate, machine_cpu_s = harness()
    iter_ns, _ = calibrate(trials=5, trial_ms=2.0, gap_s=0.005)
    rounds = max(1, int(UNIT_US * 1e3 / iter_ns))
    # Warm up the code paths.
    for _ in range(20):
        _, s = run_extra(spin_fn, rounds, 0.0, s)
    extras = {S: [] for S in (0.0,) + SLEEPS_MS}
    cpu0 = machine_cpu_s()
    for _ in range(reps):
        for S in extras:
            e, s = run_extra(spin_fn, rounds, S, s)
            extras[S].append(e)
    cpu1 = machine_cpu_s()
    base = statistics.median(extras[0.0])
    points = [(S, (statistics.median(extras[S]) - base) / 1e3) for S in SLEEPS_MS]
    c, tau = fit(points)
    out = {
        "unit_us": round(rounds * iter_ns / 1e3, 2),
        "units": UNITS,
        "reps": reps,
        "points": [{"sleep_ms": S, "extra_us": round(e, 2)} for S, e in points],
        "cold_start_us": round(c, 2),
        "cold_start_ms": round(tau, 4),
    }
    if cpu0 and cpu1:
        # The share of the CPUs' ready time (busy and stolen) the host stole, as servesim reads it.
        busy, stolen = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        out["host_steal_pct"] = round(100.0 * stolen / (busy + stolen), 2) if busy + stolen > 0 else 0.0
    return out


def self_test():
    # The fit recovers C and τ from exact points, and a flat line gives τ at its smallest.
    pts = [(S, 120.0 * (1 - math.exp(-S / 4.0))) for S in SLEEPS_MS]
    c, tau = fit(pts)
    assert abs(c - 120.0) < 3.0 and abs(tau - 4.0) / 4.0 < 0.07, (c, tau)
    c, tau = fit([(S, 10.0) for S in SLEEPS_MS])
    assert abs(c - 10.0) < 0.5 and tau < 0.02, (c, tau)
    c, _ = fit([(S, -5.0) for S in SLEEPS_MS])
    assert c == 0.0, c
    # Still rising at the longest sleep (a straight line through a measurement of 2026-12-07:
    # −18 µs at 0.1 ms to 19 µs at 30 ms): τ stops at the longest sleep, C near the last
    # figure — not a C of milliseconds over a τ of seconds.
    c, tau = fit([(S, -18.0 + 37.0 * S / 30.0) for S in SLEEPS_MS])
    assert tau <= max(SLEEPS_MS) and c < 3 * 19.0, (c, tau)
    print("cold_start.py self-test: ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=60, help="runs per sleep (default 60)")
    ap.add_argument("--json", metavar="FILE", help="write the result as JSON to FILE")
    ap.add_argument("--self-test", action="store_true", help="check the fit and exit")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    if not 5 <= a.reps <= 10000:
        ap.error("--reps must be 5 to 10000")
    out = measure(a.reps)
    for p in out["points"]:
        print(f"after {p['sleep_ms']:5.1f} ms asleep: {p['extra_us']:7.1f} µs more CPU over the first "
              f"{UNITS // 2} units of {out['unit_us']} µs")
    print(f"fit: cold_start_us = {out['cold_start_us']}, cold_start_ms = {out['cold_start_ms']}"
          + (f" (host steal {out['host_steal_pct']}%)" if "host_steal_pct" in out else ""))
    print(f"--set cost.cold_start_us={out['cold_start_us']} --set cost.cold_start_ms={out['cold_start_ms']}")
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, a.json)


if __name__ == "__main__":
    main()
