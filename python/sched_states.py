#!/usr/bin/env python3
"""Where a process's threads spend their time, as the kernel's scheduler saw it: running,
runnable (woken and waiting for a CPU, or preempted), or asleep — and on which futex.

Records the scheduler's and the futex syscalls' tracepoints with `perf record` (around a
command, or attached to a running process for a while), then follows every thread of the
process through them and prints, over the middle 60% of the recording (threads start and
stop at its ends):

* the average number of the process's threads in each state: `running`, `runnable (woken)`
  (woken, not yet on a CPU), `runnable (preempted)`, `asleep on futex ADDR` (a futex wait:
  a mutex, a condition variable, a join);
* for each futex address slept on more than 100 times, the sleeps' count and median and
  mean length, and what the same thread slept on next after being woken from it;
* where the wake-ups went: onto the waking thread's own CPU or another;
* how long a woken thread waited for a CPU (median, mean, 90th percentile).

CPython's GIL shows up as three addresses: `gil->mutex` (the most sleeps, in `take_gil`
and after every wake from the condition variable), the condition variable's two
`__g_signals` words (the timed waits), and its two `__g_refs` words (glibc's group switch:
the signaller waiting, the mutex held, for the old group's waiters to run).

    sudo python3 python/sched_states.py -- python/.venv/bin/python python/gil_bench.py \\
        --threads 8 --release-points 1000 --requests 120 --out /tmp/point.json
    sudo python3 python/sched_states.py --pid 12345 --seconds 2      # a running service

Needs Linux, `perf` and the right to read tracepoints (root, or
kernel.perf_event_paranoid ≤ -1); the standard library only. `--json FILE` also writes
the figures as JSON. `--self-test` checks the analysis on a small built-in trace (no perf).
"""

import argparse
import bisect
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

EVENTS = [
    "sched:sched_switch",
    "sched:sched_wakeup",
    "sched:sched_waking",
    "syscalls:sys_enter_futex",
]
LINE = re.compile(r"^\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)$")
FUTEX = re.compile(r"uaddr: (0x[0-9a-f]+), op: (0x[0-9a-f]+)")
SWITCH = re.compile(r"prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=.* next_pid=(\d+)")
WAKE = re.compile(r"pid=(\d+) .*target_cpu=(\d+)")
FUTEX_WAIT, FUTEX_WAIT_BITSET = 0, 9


def record(args, data):
    """Runs `perf record` on the command or the PID; returns its exit status."""
    perf = ["perf", "record", "-q", "-o", data]
    if args.long_tenures:
        # The program's switch times are CLOCK_MONOTONIC: so are the events then.
        perf += ["-k", "CLOCK_MONOTONIC"]
    for e in EVENTS:
        perf += ["-e", e]
    if args.pid:
        perf += ["-p", str(args.pid), "--", "sleep", str(args.seconds)]
    else:
        perf += ["--"] + args.command
    return subprocess.run(perf).returncode


def events(data):
    """The recording's events: (tid, cpu, time s, event, fields), and the tids by command."""
    return parse(subprocess.run(["perf", "script", "-i", data], capture_output=True, text=True).stdout)


def parse(text):
    """`perf script`'s lines as events: (tid, cpu, time s, event, fields), and the tids by
    command."""
    out, comms = [], collections.defaultdict(set)
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            comm, tid = m.group(1), int(m.group(2))
            out.append((tid, int(m.group(3)), float(m.group(4)), m.group(5), m.group(6)))
            comms[comm].add(tid)
    return out, comms


def long_intervals(switches, long_s=1e-3):
    """The long tenures among a program's GIL switch times (s, sorted): the spans of
    `long_s` or more from one switch to the next."""
    return [(a, b) for a, b in zip(switches, switches[1:]) if b - a >= long_s]


def overlap(a, b, intervals, starts):
    """How much of [a, b] the sorted, disjoint `intervals` cover (`starts`: their starts)."""
    i, got = max(bisect.bisect_right(starts, a) - 1, 0), 0.0
    while i < len(intervals) and intervals[i][0] < b:
        got += max(0.0, min(b, intervals[i][1]) - max(a, intervals[i][0]))
        i += 1
    return got


def analyse(evs, mine, long=None):
    """The states of the threads `mine` over the middle 60% of the recording; with `long`
    (the GIL's long tenures, sorted (start, end) spans in the recording's clock) the same
    split into the time inside them and the time between."""
    t_first, t_last = evs[0][2], evs[-1][2]
    w0, w1 = t_first + 0.2 * (t_last - t_first), t_first + 0.8 * (t_last - t_first)
    long = long or []
    starts = [a for a, _ in long]
    state, occupancy, in_long = {}, collections.defaultdict(float), collections.defaultdict(float)
    last_wait, asleep_on, woken_at = {}, {}, {}
    wait_for_cpu, placement = [], collections.Counter()
    sleeps, woken_from = collections.defaultdict(list), {}
    after = collections.Counter()

    def enter(tid, st, t):
        if tid in state:
            s, since = state[tid]
            a, b = max(since, w0), min(t, w1)
            if b > a:
                occupancy[s] += b - a
                if long:
                    in_long[s] += overlap(a, b, long, starts)
        state[tid] = (st, t)

    for tid, cpu, t, ev, rest in evs:
        inside = w0 <= t <= w1
        if ev == "syscalls:sys_enter_futex" and tid in mine:
            m = FUTEX.search(rest)
            if m and int(m.group(2), 16) & 0x7F in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
                last_wait[tid] = m.group(1)
        elif ev == "sched:sched_switch":
            m = SWITCH.search(rest)
            if not m:
                continue
            prev, prev_state, nxt = int(m.group(1)), m.group(2), int(m.group(3))
            if prev in mine:
                if prev_state[0] in "SD":
                    addr = last_wait.get(prev, "?")
                    enter(prev, "asleep on futex " + addr, t)
                    asleep_on[prev] = (addr, t)
                    if inside and prev in woken_from:
                        after[(woken_from[prev], addr)] += 1
                else:
                    enter(prev, "runnable (preempted)", t)
            if nxt in mine:
                if nxt in woken_at:
                    d = t - woken_at.pop(nxt)
                    if inside:
                        wait_for_cpu.append(d)
                enter(nxt, "running", t)
        elif ev == "sched:sched_wakeup":
            m = WAKE.search(rest)
            p = int(m.group(1)) if m else -1
            if p in mine:
                enter(p, "runnable (woken)", t)
                woken_at[p] = t
                if p in asleep_on:
                    addr, since = asleep_on.pop(p)
                    woken_from[p] = addr
                    if inside:
                        sleeps[addr].append(t - since)
        elif ev == "sched:sched_waking":
            m = WAKE.search(rest)
            if m and int(m.group(1)) in mine and tid in mine and inside:
                placement["onto the waker's CPU" if int(m.group(2)) == cpu else "onto another CPU"] += 1
    for tid, (s, _) in list(state.items()):
        enter(tid, s, w1)
    span = w1 - w0
    us = lambda v: round(v * 1e6, 1)
    regimes = None
    if long:
        span_long = overlap(w0, w1, long, starts)
        per = lambda occ, d: {k: round(v / d, 3) for k, v in sorted(occ.items(), key=lambda kv: -kv[1])} if d else {}
        regimes = {
            "share_of_window_in_long_tenures": round(span_long / span, 3),
            "during_long_tenures": per(in_long, span_long),
            "between_them": per({k: v - in_long[k] for k, v in occupancy.items()}, span - span_long),
        }
    return {
        "threads": len(mine),
        "window_ms": round(span * 1e3, 1),
        "threads_on_average": {
            k: round(v / span, 3) for k, v in sorted(occupancy.items(), key=lambda kv: -kv[1])
        },
        "sleeps": {
            addr: {
                "count": len(v),
                "median_us": us(statistics.median(v)),
                "mean_us": us(statistics.mean(v)),
                "next_sleep_on": {b: n for (a, b), n in after.most_common() if a == addr},
            }
            for addr, v in sorted(sleeps.items(), key=lambda kv: -len(kv[1]))
            if len(v) > 100
        },
        "wake_ups": dict(placement),
        "regimes": regimes,
        "woken_to_running_us": (
            {
                "median": us(statistics.median(wait_for_cpu)),
                "mean": us(statistics.mean(wait_for_cpu)),
                "p90": us(sorted(wait_for_cpu)[int(0.9 * len(wait_for_cpu))]),
            }
            if wait_for_cpu
            else None
        ),
    }


def text(r, name):
    lines = [f"{r['threads']} threads of {name}, over {r['window_ms']:.0f} ms in the middle of the recording"]
    lines += [f"  {k:<36} {v:6.2f} threads on average" for k, v in r["threads_on_average"].items() if v >= 0.01]
    for addr, s in r["sleeps"].items():
        nxt = ", ".join(f"{b} {n}" for b, n in list(s["next_sleep_on"].items())[:3])
        lines.append(
            f"  sleeps on {addr}: {s['count']}, median {s['median_us']:.0f} µs, mean {s['mean_us']:.0f} µs; "
            f"next sleep of the same thread: {nxt or '-'}"
        )
    lines.append(f"  wake-ups: {r['wake_ups']}")
    if r.get("regimes"):
        g = r["regimes"]
        for part, title in (("during_long_tenures", "during the GIL's tenures of 1 ms or more"), ("between_them", "between them")):
            share = g["share_of_window_in_long_tenures"]
            lines.append(f"  {title} ({100 * (share if part == 'during_long_tenures' else 1 - share):.0f}% of the window):")
            lines += [f"    {k:<34} {v:6.2f} threads on average" for k, v in g[part].items() if v >= 0.01]
    if r["woken_to_running_us"]:
        w = r["woken_to_running_us"]
        lines.append(f"  woken → running: median {w['median']} µs, mean {w['mean']} µs, p90 {w['p90']} µs")
    return "\n".join(lines)


SELF_TEST = """\
 prog   101 [000]     0.000000: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=prog next_pid=101 next_prio=120
 prog   102 [001]     0.000000: sched:sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=prog next_pid=102 next_prio=120
 prog   102 [001]     0.010000: syscalls:sys_enter_futex: uaddr: 0x7f00000a, op: 0x00000080, val: 0x00000002, utime: 0x00000000, uaddr2: 0x00000000, val3: 0x00000000
 prog   102 [001]     0.010000: sched:sched_switch: prev_comm=prog prev_pid=102 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
 prog   101 [000]     0.030000: sched:sched_waking: comm=prog pid=102 prio=120 target_cpu=001
 prog   101 [000]     0.030000: sched:sched_wakeup: comm=prog pid=102 prio=120 target_cpu=001
 swapper     0 [001]     0.040000: sched:sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=prog next_pid=102 next_prio=120
 prog   101 [000]     0.100000: syscalls:sys_enter_futex: uaddr: 0x7f00000b, op: 0x00000081, val: 0x00000001, utime: 0x00000000, uaddr2: 0x00000000, val3: 0x00000000
"""


def self_test():
    """Two threads over 100 ms: 101 runs throughout; 102 runs, sleeps on a futex at 10 ms,
    is woken from the other CPU at 30 ms and runs from 40 ms. Over the middle 60% (20–80
    ms): running 1 + 40/60, asleep 10/60, woken and waiting 10/60; one wake-up, onto
    another CPU, 10 ms from woken to running."""
    evs, comms = parse(SELF_TEST)
    assert comms["prog"] == {101, 102}, comms
    r = analyse(evs, {101, 102})
    occ = r["threads_on_average"]
    want = {"running": 1 + 40 / 60, "asleep on futex 0x7f00000a": 10 / 60, "runnable (woken)": 10 / 60}
    for k, v in want.items():
        assert abs(occ.get(k, 0.0) - v) < 1e-3, (k, occ)
    assert abs(sum(occ.values()) - 2.0) < 1e-3, occ
    assert r["wake_ups"] == {"onto another CPU": 1}, r["wake_ups"]
    assert r["woken_to_running_us"]["median"] == 10000.0, r["woken_to_running_us"]
    # Split by the GIL's long tenures: switches at 20, 50 and 50.5 ms make one long tenure,
    # 20-50 ms. In it: 101 running, 102 asleep 20-30, woken 30-40, running 40-50; between
    # (50-80 ms): both running.
    long = long_intervals([0.020, 0.050, 0.0505])
    assert long == [(0.020, 0.050)], long
    g = analyse(evs, {101, 102}, long)["regimes"]
    assert abs(g["share_of_window_in_long_tenures"] - 0.5) < 1e-3, g
    want = {"running": 4 / 3, "asleep on futex 0x7f00000a": 1 / 3, "runnable (woken)": 1 / 3}
    for k, v in want.items():
        assert abs(g["during_long_tenures"].get(k, 0.0) - v) < 1e-3, (k, g)
    assert abs(g["between_them"].get("running", 0.0) - 2.0) < 1e-3, g
    assert analyse(evs, {101, 102})["regimes"] is None
    print("sched_states self-test: ok")


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    ap = argparse.ArgumentParser(
        description="Where a process's threads spend their time: running, runnable, or asleep on which futex "
        "(perf's scheduler and futex tracepoints).",
        epilog="example: sudo python3 python/sched_states.py -- ./target/gil_condvar/gil_condvar 8 4.4 1.0 0.4; "
        "python3 python/sched_states.py --self-test checks the analysis on a built-in trace",
    )
    ap.add_argument("--pid", type=int, help="attach to this running process instead of starting a command")
    ap.add_argument("--seconds", type=float, default=2.0, help="how long to record with --pid (default 2)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument(
        "--long-tenures",
        metavar="FILE",
        help="the GIL's switch times (CLOCK_MONOTONIC ns, one a line), as gil_condvar.c writes them "
        "to its fifth argument: split the threads' states into the time inside the GIL's tenures "
        "of 1 ms or more and the time between (records with perf's clock set to CLOCK_MONOTONIC)",
    )
    ap.add_argument("command", nargs="*", help="the command to run and record (after --)")
    args = ap.parse_args()
    if bool(args.pid) == bool(args.command):
        ap.error("give either a command to run (after --) or --pid PID")
    if not args.pid and args.seconds != 2.0:
        ap.error("--seconds applies only with --pid")
    if shutil.which("perf") is None:
        sys.exit("sched_states: `perf` is not installed (linux-perf / linux-tools): nothing recorded")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        status = record(args, data)
        if not os.path.exists(data):
            sys.exit(
                f"sched_states: perf recorded nothing (exit {status}): reading tracepoints needs root or "
                "kernel.perf_event_paranoid ≤ -1, and tracefs mounted"
            )
        evs, comms = events(data)
    if not evs:
        sys.exit("sched_states: the recording holds no events")
    if args.pid:
        mine = {int(t) for t in os.listdir(f"/proc/{args.pid}/task")} if os.path.isdir(f"/proc/{args.pid}") else set()
        mine |= {tid for tid, *_ in evs if tid == args.pid}
        name = f"pid {args.pid}"
    else:
        # The command's threads: every tid whose command name starts like the program's.
        prog = os.path.basename(args.command[0])[:15]
        mine = set().union(*(t for c, t in comms.items() if c.startswith(prog[:8])))
        name = prog
    if not mine:
        sys.exit(f"sched_states: no thread of {name} in the recording")
    long = None
    if args.long_tenures:
        try:
            with open(args.long_tenures) as f:
                switches = sorted(int(line) / 1e9 for line in f if line.strip())
        except (OSError, ValueError) as e:
            sys.exit(f"sched_states: --long-tenures {args.long_tenures}: {e} (one switch time in ns a line)")
        if len(switches) < 2:
            sys.exit(f"sched_states: --long-tenures {args.long_tenures} holds fewer than two switches")
        long = long_intervals(switches)
    r = analyse(evs, mine, long)
    print(text(r, name))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
