#!/usr/bin/env python3
"""CPython GIL benchmark harness for validating servesim's GIL model.

T threads in one process run requests back to back (closed loop, no think
time). A request is K segments; each segment is pure-Python bytecode (the GIL
is held) costing held_ms/K, followed by ONE NumPy ufunc call on float64 arrays
(the GIL is released inside the ufunc loop) costing free_ms/K, where
held_ms = work_ms * held_share and free_ms = work_ms * (1 - held_share).

Besides the multi-threaded measurement, every (work_ms, held_share, K) gets a
one-thread *profile*: what such a request really costs alone, measured (not the
targets), split into bytecode time and NumPy time. That profile is what the
simulator takes as its costs; the multi-threaded points are what it must
predict.

Only the standard library and numpy. Python 3.9+.
"""

import os

# No BLAS/OpenMP thread pools on other cores (the harness uses no BLAS
# routine anyway). Must happen before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import gc
import json
import math
import platform
try:
    import resource
except ImportError:  # not on every platform
    resource = None
import sys
import tempfile
import threading
import time

np = None  # imported lazily (after argument validation) by _import_numpy()

MASK64 = (1 << 64) - 1
XORSHIFT_SEED = 0x9E3779B97F4A7C15

# NumPy's ufunc loops release the GIL only when the loop is longer than
# NPY_BEGIN_THREADS_THRESHOLD (500) elements; stay well above it.
MIN_ELEMENTS = 1024
# Largest array one NumPy call may use (32 MiB of float64); a target above what
# that costs is not reached, and the profile says so.
MAX_ELEMENTS = 4 * 1024 * 1024
# NumPy calls of at least this many µs use np.sin (compute-bound); shorter ones
# np.multiply (cheap per element; at 20 µs its three arrays take ~0.9 MiB).
SIN_FROM_US = 20.0
# Refuse runs whose per-thread output arrays would need more than this.
MAX_ARRAY_BYTES = 1 << 30

# Limits of the command-line arguments.
MAX_THREADS = 1024
MAX_RELEASE_POINTS = 10000
MAX_WORK_MS = 1000.0
MAX_REQUESTS = 1000000

PROFILE_SAMPLES = 2000
LATENCY_DECIMALS = 4


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def _import_numpy():
    global np
    if np is None:
        try:
            import numpy
        except ImportError as e:  # pragma: no cover - environment problem
            log("gil_bench: numpy is not importable (%s); run python/make_venv.sh and use "
                "python/.venv/bin/python" % e)
            sys.exit(1)
        np = numpy
    return np


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z = z ^ (z >> 31)
    return z or XORSHIFT_SEED


# ---------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------

def _spin(n, s):
    """The bytecode workload: n rounds of 64-bit xorshift on a Python int."""
    m = MASK64
    for _ in range(n):
        s ^= (s << 13) & m
        s ^= s >> 7
        s ^= (s << 17) & m
    return s


def calibrate_bytecode(trials=9, trial_ms=5.0, gap_s=0.02):
    """ns per xorshift round: single-threaded, best of `trials`.

    Trials are timed in this thread's CPU time (so a trial that another process
    preempts still counts right) and spread out over a few tenths of a second
    (so one slow phase of a shared machine does not decide the calibration).
    """
    clk = time.thread_time_ns
    n = 1000
    s = XORSHIFT_SEED
    # Grow n until one trial takes about trial_ms (bounded: at most 20 doublings).
    for _ in range(20):
        t0 = clk()
        s = _spin(n, s)
        dt = clk() - t0
        if dt >= trial_ms * 1e6 * 0.5:
            break
        n *= 2
    best = None
    for i in range(trials):
        if i:
            time.sleep(gap_s)
        t0 = clk()
        s = _spin(n, s)
        dt = clk() - t0
        best = dt if best is None else min(best, dt)
    return best / n, n


def timer_overhead_ns(pairs=20000):
    """Median delta of two back-to-back perf_counter_ns() calls."""
    pc = time.perf_counter_ns
    d = []
    for _ in range(pairs):
        a = pc()
        b = pc()
        d.append(b - a)
    d.sort()
    return d[len(d) // 2]


def aligned_array(n, offset, fill=None):
    """A float64 array of n elements starting `offset` bytes past a 4 KiB boundary.

    Alignment matters: the same np.multiply on 2,531 elements costs 1.1 us with
    64-byte-aligned arrays and 1.8 us when malloc hands out 16-byte-aligned ones
    (vector loads split across cache lines). Inputs and output sit at different
    offsets (0, 1 KiB, 2 KiB) so their streams do not alias modulo 4 KiB.
    """
    buf = np.empty(n + 1024, dtype=np.float64)
    start = ((-buf.ctypes.data) % 4096 + offset) // 8
    a = buf[start:start + n]
    a[:] = 0.0 if fill is None else fill  # touches every page
    return a


OFF_X, OFF_Y, OFF_OUT = 0, 1024, 2048


class UfuncOp(object):
    """One NumPy ufunc call on float64 arrays with out=; releases the GIL."""

    def __init__(self, name):
        _import_numpy()
        self.name = name
        if name == "multiply":
            self.ufunc = np.multiply
            self.binary = True
        elif name == "sin":
            self.ufunc = np.sin
            self.binary = False
        else:
            raise ValueError(name)

    def arrays(self, n, seed):
        rng = np.random.default_rng(seed)
        x = aligned_array(n, OFF_X, rng.uniform(0.5, 2.0, n))
        y = aligned_array(n, OFF_Y, rng.uniform(0.5, 2.0, n)) if self.binary else None
        return x, y

    def call_us(self, x, y, out, reps, trials=5, stat="best"):
        """Mean µs of one call over `reps` back-to-back calls; best/median of trials.

        Timed in this thread's CPU time: preemption by other processes does not count.
        """
        uf = self.ufunc
        pc = time.thread_time_ns
        res = []
        for _ in range(trials):
            if self.binary:
                t0 = pc()
                for _ in range(reps):
                    uf(x, y, out=out)
                dt = pc() - t0
            else:
                t0 = pc()
                for _ in range(reps):
                    uf(x, out=out)
                dt = pc() - t0
            res.append(dt / reps / 1000.0)
        res.sort()
        return res[0] if stat == "best" else res[len(res) // 2]

    def measure(self, n, seed=1, budget_ms=20.0):
        x, y = self.arrays(n, seed)
        out = aligned_array(n, OFF_OUT)
        # One call to size the repetitions, then timed trials.
        one = self.call_us(x, y, out, 1, trials=1)
        reps = int(max(1, min(2000, budget_ms * 1000.0 / 5 / max(one, 0.05))))
        # Best of trials: interference from other processes only adds time.
        return self.call_us(x, y, out, reps, trials=7, stat="best")


class NumpyCalibration(object):
    """Cost models of the candidate ufuncs, measured once at start-up.

    np.multiply is cheap per element (good for short calls, down to the
    1,024-element minimum) but memory-bound at large sizes, which would not
    scale across cores; np.sin is compute-bound (several ns per element) so
    long calls stay cache-friendly and scale. A target below SIN_FROM_US uses
    multiply (its arrays then stay within a core's L2 cache); otherwise sin.
    The rule is fixed, not measured, so a noisy start-up cannot flip it.
    """

    def __init__(self, seed):
        self.seed = seed
        self.ops = {"multiply": UfuncOp("multiply"), "sin": UfuncOp("sin")}
        self.model = {}
        for name, op in self.ops.items():
            sizes = [MIN_ELEMENTS, 4 * MIN_ELEMENTS, 16 * MIN_ELEMENTS, 64 * MIN_ELEMENTS]
            ts = [op.measure(n, seed) for n in sizes]
            # Least-squares line t = a + b*n.
            k = len(sizes)
            mx = sum(sizes) / k
            my = sum(ts) / k
            sxx = sum((s - mx) ** 2 for s in sizes)
            sxy = sum((s - mx) * (t - my) for s, t in zip(sizes, ts))
            b = max(sxy / sxx, 1e-6)
            a = my - b * mx
            self.model[name] = {"a_us": a, "b_us_per_elem": b, "min_call_us": ts[0]}
        x, y = self.ops["multiply"].arrays(8, seed)
        out = aligned_array(8, OFF_OUT)
        # Best of trials: interference from other processes only adds time.
        self.tiny_call_us = {
            name: op.call_us(x, y, out, 2000, trials=7, stat="best")
            for name, op in self.ops.items()
        }
        self._cache = {}

    def plan(self, target_us):
        """(op, n_elements, measured_call_us, notes) for one call of target_us."""
        key = round(target_us, 6)
        if key in self._cache:
            return self._cache[key]
        notes = []
        name = "sin" if target_us >= SIN_FROM_US else "multiply"
        op = self.ops[name]
        m = self.model[name]
        n = int(round((target_us - m["a_us"]) / m["b_us_per_elem"]))
        n = max(MIN_ELEMENTS, min(MAX_ELEMENTS, n))
        measured = op.measure(n, self.seed)
        # One Newton step on the calibrated slope (at most x2) against the measured cost.
        if measured > 0:
            n2 = n + (target_us - measured) / m["b_us_per_elem"]
            n2 = max(MIN_ELEMENTS, min(MAX_ELEMENTS, int(round(max(n / 2.0, min(2.0 * n, n2))))))
            if n2 != n:
                m2 = op.measure(n2, self.seed)
                if abs(m2 - target_us) < abs(measured - target_us):
                    n, measured = n2, m2
        res = (op, n, measured, notes)
        self._cache[key] = res
        return res

    def to_json(self):
        return {
            "models": {k: {kk: round(vv, 6) for kk, vv in v.items()} for k, v in self.model.items()},
            "tiny_call_us": {k: round(v, 4) for k, v in self.tiny_call_us.items()},
        }


# ---------------------------------------------------------------------------
# The request workload
# ---------------------------------------------------------------------------

class Workload(object):
    """One (work_ms, held_share, K) combination: iteration counts and a NumPy call."""

    def __init__(self, work_ms, held_share, k, iter_ns, npcal):
        self.work_ms = work_ms
        self.held_share = held_share
        self.k = k
        self.held_ms = work_ms * held_share
        self.free_ms = work_ms * (1.0 - held_share)
        self.iter_ns = iter_ns
        self.has_held = held_share > 0.0
        self.has_free = held_share < 1.0
        self.counts = [0] * k
        if self.has_held:
            self.set_rounds(self.held_ms * 1e6 / iter_ns)
        self.iters_per_request = sum(self.counts)
        if self.has_free:
            self.call_target_us = self.free_ms * 1000.0 / k
            self.op, self.n_elements, self.call_cal_us, _ = npcal.plan(self.call_target_us)
            self.call_overhead_us = npcal.tiny_call_us[self.op.name]
            self.slope_us = npcal.model[self.op.name]["b_us_per_elem"]
        else:
            self.call_target_us = 0.0
            self.op, self.n_elements, self.call_cal_us = None, 0, 0.0
            self.call_overhead_us = 0.0
        self.tuning = []

    def set_rounds(self, total):
        """Spread `total` (fractional) bytecode rounds over the K segments.

        Error diffusion keeps the request total right even below 1 round/segment.
        """
        k = self.k
        per_seg = max(total, 0.0) / k
        self.counts = [int(math.floor((i + 1) * per_seg)) - int(math.floor(i * per_seg))
                       for i in range(k)]
        self.iters_per_request = sum(self.counts)

    def tune(self, seed, timer_ns, rounds=3, budget_s=0.1):
        """Adjust rounds and array size so that, at the calibrated (best) speed, a
        segment's bytecode and a NumPy call cost their targets *inside a request*.

        Start-up calibration times the xorshift loop and the ufunc back to back; inside
        a request each segment also pays its loop set-up, and each call runs on colder
        caches. Those in-situ/back-to-back ratios are measured by alternating a timed
        request with the same work done back to back, so they do not depend on how
        fast a shared machine happens to be at the moment (on this kind of VM the
        speed of a core can swing by 1.5x within a second).
        """
        x, y = self.inputs(seed)
        out = self.new_out()
        s = _splitmix64(seed ^ 0x5151)
        pc = time.perf_counter_ns
        k = self.k
        reps = 8
        for _ in range(rounds):
            timed = self.make_timed_request(x, y, out)
            s, _, _ = timed(s)  # warm
            rh, rf = [], []
            t_end = pc() + int(budget_s * 1e9)
            while len(rh) + len(rf) < 60 and (max(len(rh), len(rf)) < 3 or pc() < t_end):
                # Order matters: the back-to-back NumPy calls come right after the
                # request (which ends with a call), not after milliseconds of pure
                # bytecode: the CPU's wide vector units power down when unused and run
                # slowly for a while after waking up.
                bb_spin = 0
                if self.has_held and self.iters_per_request > 0:
                    t0 = pc()
                    s = _spin(self.iters_per_request, s)
                    bb_spin = pc() - t0
                s, h, f = timed(s)
                if bb_spin > 0:
                    rh.append((h - k * timer_ns) / float(bb_spin))
                if self.has_free:
                    t0 = pc()
                    if self.op.binary:
                        for _ in range(reps):
                            self.op.ufunc(x, y, out=out)
                    else:
                        for _ in range(reps):
                            self.op.ufunc(x, out=out)
                    bb = (pc() - t0) / float(reps)
                    if bb > 0:
                        rf.append((f - k * timer_ns) / k / bb)
            rh.sort()
            rf.sort()
            ratio_h = rh[len(rh) // 2] if rh else None
            ratio_f = rf[len(rf) // 2] if rf else None
            held_ms = (self.iters_per_request * self.iter_ns * ratio_h / 1e6) if ratio_h else 0.0
            call_us = (self.call_cal_us * ratio_f) if ratio_f else None
            self.tuning.append({
                "rounds": self.iters_per_request, "elements": self.n_elements,
                "held_in_situ_ratio": rnd(ratio_h, 4), "call_in_situ_ratio": rnd(ratio_f, 4),
                "predicted_held_ms": rnd(held_ms, 6), "predicted_call_us": rnd(call_us, 4)})
            changed = False
            if self.has_held and held_ms > 0:
                err = held_ms / self.held_ms
                if abs(err - 1.0) > 0.04:
                    self.set_rounds(self.iters_per_request / err)
                    changed = True
            if self.has_free and call_us:
                err = call_us / self.call_target_us
                if abs(err - 1.0) > 0.05:
                    # Newton step on the calibrated per-element slope, at most x2 either way.
                    n = self.n_elements
                    n2 = n + (self.call_target_us - call_us) / self.slope_us
                    n2 = max(n / 2.0, min(2.0 * n, n2))
                    n2 = max(MIN_ELEMENTS, min(MAX_ELEMENTS, int(round(n2))))
                    if n2 != self.n_elements:
                        self.n_elements = n2
                        self.call_cal_us = self.op.measure(n2, seed)
                        x, y = self.inputs(seed)
                        out = self.new_out()
                        changed = True
            if not changed:
                break

    def limit_notes(self, held_seg_us, call_us):
        """Why measured costs may depart from the targets (after tuning)."""
        notes = []
        if self.has_held and self.held_ms * 1e6 / self.iter_ns / self.k < 1.0:
            notes.append(
                "held target %.3f us per segment is below one bytecode round (%.3f us): "
                "%d rounds spread over %d segments, and each segment's loop set-up costs too"
                % (self.held_ms * 1000.0 / self.k, self.iter_ns / 1000.0,
                   self.iters_per_request, self.k))
        if self.has_free and call_us is not None:
            if self.n_elements == MIN_ELEMENTS and call_us > self.call_target_us * 1.05:
                notes.append(
                    "target %.3f us per NumPy call is below what the smallest GIL-releasing "
                    "call (%d elements of np.%s) costs inside a request: %.3f us"
                    % (self.call_target_us, MIN_ELEMENTS, self.op.name, call_us))
            if self.n_elements == MAX_ELEMENTS and call_us < self.call_target_us * 0.95:
                notes.append(
                    "target %.1f us per NumPy call is above what the largest allowed call "
                    "(%d elements of np.%s) costs: %.1f us"
                    % (self.call_target_us, MAX_ELEMENTS, self.op.name, call_us))
        return notes

    def describe(self):
        return "W=%g H=%g K=%d" % (self.work_ms, self.held_share, self.k)

    # Shared read-only inputs + a private output array per thread (no false sharing).
    def inputs(self, seed):
        if not self.has_free:
            return None, None
        return self.op.arrays(self.n_elements, seed)

    def new_out(self):
        if not self.has_free:
            return None
        return aligned_array(self.n_elements, OFF_OUT)

    def make_request(self, x, y, out):
        """A function run(s) -> s doing one request (no instrumentation)."""
        counts = self.counts
        m = MASK64
        k = self.k
        if not self.has_free:
            def run(s):
                for n in counts:
                    for _ in range(n):
                        s ^= (s << 13) & m
                        s ^= s >> 7
                        s ^= (s << 17) & m
                return s
            return run
        uf = self.op.ufunc
        if not self.has_held:
            if self.op.binary:
                def run(s):
                    for _ in range(k):
                        uf(x, y, out=out)
                    return s
            else:
                def run(s):
                    for _ in range(k):
                        uf(x, out=out)
                    return s
            return run
        if self.op.binary:
            def run(s):
                for n in counts:
                    for _ in range(n):
                        s ^= (s << 13) & m
                        s ^= s >> 7
                        s ^= (s << 17) & m
                    uf(x, y, out=out)
                return s
        else:
            def run(s):
                for n in counts:
                    for _ in range(n):
                        s ^= (s << 13) & m
                        s ^= s >> 7
                        s ^= (s << 17) & m
                    uf(x, out=out)
                return s
        return run

    def make_timed_request(self, x, y, out):
        """run(s) -> (s, held_ns, free_ns): each segment and call timed separately."""
        counts = self.counts
        m = MASK64
        pc = time.perf_counter_ns
        has_held, has_free = self.has_held, self.has_free
        uf = self.op.ufunc if has_free else None
        binary = self.op.binary if has_free else False

        def run(s):
            held = 0
            free = 0
            for n in counts:
                if has_held:
                    t0 = pc()
                    for _ in range(n):
                        s ^= (s << 13) & m
                        s ^= s >> 7
                        s ^= (s << 17) & m
                    held += pc() - t0
                if has_free:
                    t1 = pc()
                    if binary:
                        uf(x, y, out=out)
                    else:
                        uf(x, out=out)
                    free += pc() - t1
            return s, held, free
        return run


# ---------------------------------------------------------------------------
# Statistics helpers
# ---------------------------------------------------------------------------

def percentile(sorted_vals, q):
    """Linear-interpolated percentile (q in [0, 100]) of a sorted list."""
    if not sorted_vals:
        return None
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    pos = (len(sorted_vals) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def mean(vals):
    return sum(vals) / len(vals) if vals else None


def rnd(v, d=LATENCY_DECIMALS):
    return None if v is None else round(v, d)


def subsample(vals, limit=PROFILE_SAMPLES):
    if len(vals) <= limit:
        return list(vals)
    step = len(vals) / float(limit)
    return [vals[int(i * step)] for i in range(limit)]


# ---------------------------------------------------------------------------
# One-thread profile
# ---------------------------------------------------------------------------

def profile_workload(wl, seed, timer_ns, npcal, budget_s=1.0, max_requests=PROFILE_SAMPLES,
                     min_requests=10):
    """What one request of `wl` costs alone, measured on one thread (this thread)."""
    x, y = wl.inputs(seed)
    out = wl.new_out()
    s = _splitmix64(seed)
    pc = time.perf_counter_ns
    gc.collect()

    # Uninstrumented requests (exactly what the multi-threaded run executes) and
    # instrumented ones (every bytecode segment and every NumPy call timed)
    # alternate, so both see the same machine conditions.
    run = wl.make_request(x, y, out)
    timed = wl.make_timed_request(x, y, out)
    s = run(s)  # warm
    s, _, _ = timed(s)
    req_ns, held_ns, free_ns, tot_ns = [], [], [], []
    mach0 = machine_cpu_s()
    cpu0 = time.process_time()
    w0 = pc()
    t_end = w0 + int(budget_s * 1e9)
    tclk = time.thread_time_ns
    ok_run, ok_timed = [], []
    while len(req_ns) < max_requests and (len(req_ns) < min_requests or pc() < t_end):
        c0 = tclk()
        t0 = pc()
        s = run(s)
        t1 = pc()
        c1 = tclk()
        s, h, f = timed(s)
        t2 = pc()
        c2 = tclk()
        req_ns.append(t1 - t0)
        tot_ns.append(t2 - t1)
        ok_run.append(not preempted(t1 - t0, c1 - c0))
        ok_timed.append(not preempted(t2 - t1, c2 - c1))
        # Each timed section includes about one timer call's cost; remove it.
        if wl.has_held:
            h -= wl.k * timer_ns
        if wl.has_free:
            f -= wl.k * timer_ns
        held_ns.append(max(h, 0))
        free_ns.append(max(f, 0))
    n_all = len(req_ns)
    pre_run = n_all - sum(ok_run)
    pre_timed = n_all - sum(ok_timed)
    notes_pre = []
    # Requests that waited for a CPU do not show what a request costs alone: drop
    # them, unless too few are left (then keep all and say so).
    if n_all - pre_run >= max(5, n_all // 2):
        req_ns = [v for v, ok in zip(req_ns, ok_run) if ok]
    elif pre_run:
        notes_pre.append("%d of %d uninstrumented requests were preempted by other processes; "
                         "kept: request times include waiting for a CPU" % (pre_run, n_all))
    if n_all - pre_timed >= max(5, n_all // 2):
        held_ns = [v for v, ok in zip(held_ns, ok_timed) if ok]
        free_ns = [v for v, ok in zip(free_ns, ok_timed) if ok]
        tot_ns = [v for v, ok in zip(tot_ns, ok_timed) if ok]
    elif pre_timed:
        notes_pre.append("%d of %d instrumented requests were preempted by other processes; "
                         "kept: held/free times include waiting for a CPU" % (pre_timed, n_all))

    wall = (pc() - w0) / 1e9
    cpu = time.process_time() - cpu0
    mach1 = machine_cpu_s()
    other_cores = None
    if mach0 is not None and mach1 is not None and wall > 0:
        other_cores = max(0.0, (mach1[0] - mach0[0]) - cpu) / wall

    k = wl.k
    req_ms = [v / 1e6 for v in req_ns]
    held_ms = [v / 1e6 for v in held_ns]
    free_ms = [v / 1e6 for v in free_ns]
    req_sorted = sorted(req_ms)
    request_ms_mean = mean(req_ms)
    held_ms_mean = mean(held_ms)
    free_ms_mean = mean(free_ms)
    call_free_us = free_ms_mean * 1000.0 / k if wl.has_free else None
    seg_held_us = held_ms_mean * 1000.0 / k if wl.has_held else None
    np_overhead_us = npcal.tiny_call_us[wl.op.name] if wl.has_free else None
    # Glue: loop bookkeeping per segment that is in neither timed section
    # (uninstrumented request minus the two timed parts). Python bytecode: GIL held.
    glue_us = (request_ms_mean - held_ms_mean - free_ms_mean) * 1000.0 / k
    # The GIL is released only inside the ufunc's inner loop: argument parsing,
    # dispatch and iterator set-up (≈ the same call on 8 elements) hold it.
    if wl.has_free:
        released_ms = k * max(call_free_us - np_overhead_us, 0.0) / 1000.0
    else:
        released_ms = 0.0
    locked_ms = max(request_ms_mean - released_ms, 0.0)

    notes = wl.limit_notes(seg_held_us, call_free_us) + notes_pre
    if wl.has_free and call_free_us is not None and wl.call_target_us > 0:
        ratio = call_free_us / wl.call_target_us
        if ratio > 1.25 or ratio < 0.8:
            notes.append("measured %.3f us per NumPy call vs target %.3f us (x%.2f)"
                         % (call_free_us, wl.call_target_us, ratio))
    if abs(request_ms_mean - wl.work_ms) > 0.2 * wl.work_ms:
        notes.append("a request costs %.3f ms alone vs work_ms %.3f (x%.2f): use the measured "
                     "numbers, not the targets" % (request_ms_mean, wl.work_ms,
                                                   request_ms_mean / wl.work_ms))

    return {
        "work_ms": wl.work_ms,
        "held_share": wl.held_share,
        "release_points": k,
        "target_held_ms": rnd(wl.held_ms, 6),
        "target_free_ms": rnd(wl.free_ms, 6),
        "bytecode_round_ns": rnd(wl.iter_ns, 3),
        "bytecode_rounds_per_request": wl.iters_per_request,
        "numpy_op": ("np.%s(x%s, out=z)" % (wl.op.name, ", y" if wl.op.binary else ""))
        if wl.has_free else None,
        "numpy_elements": wl.n_elements if wl.has_free else 0,
        "numpy_call_target_us": rnd(wl.call_target_us, 4) if wl.has_free else None,
        "tuning": wl.tuning,
        "requests": len(req_ms),
        "requests_timed": len(held_ms),
        "preempted_dropped": [pre_run if len(req_ms) < n_all else 0,
                              pre_timed if len(held_ms) < n_all else 0],
        # Per request, alone, uninstrumented: the real cost of one request.
        "request_ms_mean": rnd(request_ms_mean, 6),
        "request_ms_p50": rnd(percentile(req_sorted, 50), 6),
        "request_ms_min": rnd(req_sorted[0], 6),
        "request_ms_samples": [rnd(v, 6) for v in subsample(req_ms)],
        # Per request, instrumented, timer overhead removed.
        "held_ms_mean": rnd(held_ms_mean, 6),
        "held_ms_p50": rnd(percentile(sorted(held_ms), 50), 6),
        "held_ms_samples": [rnd(v, 6) for v in subsample(held_ms)],
        "free_ms_mean": rnd(free_ms_mean, 6),
        "free_ms_p50": rnd(percentile(sorted(free_ms), 50), 6),
        "free_ms_samples": [rnd(v, 6) for v in subsample(free_ms)],
        "instrumented_request_ms_mean": rnd(mean(tot_ns) / 1e6, 6),
        # Per segment.
        "segment_held_us_mean": rnd(seg_held_us, 4),
        "call_free_us_mean": rnd(call_free_us, 4),
        # Per-call overheads.
        "timer_overhead_ns": timer_ns,
        "numpy_call_overhead_us": rnd(np_overhead_us, 4),
        "glue_overhead_us_per_segment": rnd(glue_us, 4),
        # Suggested simulator costs (see README): GIL-held vs GIL-released per request.
        "sim": {
            "locked_ms": rnd(locked_ms, 6),
            "free_ms": rnd(released_ms, 6),
            "release_points": k,
        },
        # Was the profile clean? cpu_share < ~0.95: this thread was preempted;
        # other_cpu_cores > ~0.15: other processes were busy meanwhile.
        "wall_s": rnd(wall, 4),
        "cpu_share": rnd(cpu / wall, 4) if wall > 0 else None,
        "other_cpu_cores": rnd(other_cores, 3),
        "notes": notes,
    }


def merge_profiles(before, after):
    """One profile from two of the same workload, measured just before and just after a
    point: the machine's state over the point, as near as a one-thread profile can see it.

    Means (and medians, approximately) are the two profiles' weighted by their requests;
    samples are pooled;
    `drift` is how much slower (+) or faster (-) a request ran after than before, the
    machine's own movement across the point."""
    def wmean(key, sub=None):
        b = before[sub][key] if sub else before[key]
        f = after[sub][key] if sub else after[key]
        if b is None or f is None:
            return b if f is None else f
        nb, nf = before["requests_timed"], after["requests_timed"]
        if key.startswith("request_ms"):
            nb, nf = before["requests"], after["requests"]
        return (b * nb + f * nf) / max(nb + nf, 1)

    out = dict(before)
    for key in ("request_ms_mean", "request_ms_p50", "held_ms_mean", "held_ms_p50",
                "free_ms_mean", "free_ms_p50", "instrumented_request_ms_mean",
                "segment_held_us_mean", "call_free_us_mean", "glue_overhead_us_per_segment"):
        v = wmean(key)
        out[key] = rnd(v, 6) if v is not None else None
    out["sim"] = dict(before["sim"])
    for key in ("locked_ms", "free_ms"):
        out["sim"][key] = rnd(wmean(key, "sim"), 6)
    for key in ("request_ms_samples", "held_ms_samples", "free_ms_samples"):
        out[key] = subsample(before[key] + after[key])
    out["request_ms_min"] = min(before["request_ms_min"], after["request_ms_min"])
    for key in ("requests", "requests_timed", "wall_s"):
        out[key] = before[key] + after[key]
    out["preempted_dropped"] = [x + y for x, y in zip(before["preempted_dropped"],
                                                      after["preempted_dropped"])]
    oc = [v for v in (before["other_cpu_cores"], after["other_cpu_cores"]) if v is not None]
    out["other_cpu_cores"] = max(oc) if oc else None
    cs = [v for v in (before["cpu_share"], after["cpu_share"]) if v is not None]
    out["cpu_share"] = min(cs) if cs else None
    out["notes"] = before["notes"] + [n for n in after["notes"] if n not in before["notes"]]
    out["before_request_ms_mean"] = before["request_ms_mean"]
    out["after_request_ms_mean"] = after["request_ms_mean"]
    out["drift"] = rnd(after["request_ms_mean"] / before["request_ms_mean"] - 1.0, 4) \
        if before["request_ms_mean"] else None
    return out


# ---------------------------------------------------------------------------
# Multi-threaded closed-loop run
# ---------------------------------------------------------------------------

def machine_cpu_s():
    """(busy CPU seconds of the whole machine, steal seconds) from /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        hz = float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, AttributeError):
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 8:
        return None
    v = [int(x) for x in fields[1:]]
    # user nice system idle iowait irq softirq steal ...
    busy = v[0] + v[1] + v[2] + v[5] + v[6]
    steal = v[7] if len(v) > 7 else 0
    return busy / hz, steal / hz


# The share of the CPUs' ready time a virtual machine's host may steal before a point
# counts as disturbed (servesim's STEAL_LIMIT), and the re-measurements of such a point.
STEAL_LIMIT = 0.05
STOLEN_RETRIES = 2


def steal_share(res):
    """The share of the CPUs' ready time (this process's CPU, other processes' and the
    steal) that the host stole during a point, or None when it was not measured."""
    s = res.get("steal_s")
    if s is None:
        return None
    wanted = (res.get("process_cpu_total_s") or 0.0) + (res.get("other_cpu_s") or 0.0) + s
    return s / wanted if wanted > 0 else 0.0


def preempted(wall_ns, cpu_ns):
    """True when a one-thread request's wall time exceeds its CPU time: it waited
    for a CPU (another process ran), so it does not show what it costs alone."""
    return wall_ns > cpu_ns * 1.03 + 30000


class _RunState(object):
    def __init__(self, warmup, n, deadline_ns):
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.go = threading.Event()
        self.warmup = warmup
        self.total = warmup + n
        self.completed = 0
        self.stop = False
        self.truncated = False
        self.deadline_ns = deadline_ns
        self.t_start = None
        self.win_start = None
        self.win_cpu0 = None
        self.win_sw0 = None
        self.win_end = None
        self.win_cpu1 = None
        self.win_sw1 = None
        self.latency_ns = []
        self.end_times = []


def switches():
    """The process's voluntary and involuntary context switches so far, every thread's
    (getrusage); None where the platform lacks it."""
    if resource is None:
        return None
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_nvcsw, r.ru_nivcsw)


def run_point(wl, threads, n, warmup, max_seconds, seed):
    """Run T threads closed-loop until n requests complete after warmup (or time out)."""
    gc.collect()
    x, y = wl.inputs(seed)
    outs = [wl.new_out() for _ in range(threads)]
    pc = time.perf_counter_ns
    st = _RunState(warmup, n, 0)
    thread_cpu_ns = [0] * threads
    thread_measured = [0] * threads

    def worker(idx):
        c0 = time.thread_time_ns()
        run = wl.make_request(x, y, outs[idx])
        s = _splitmix64(seed * 1000003 + idx)
        lock = st.lock
        st.go.wait()
        measured = 0
        try:
            while True:
                t0 = pc()
                s = run(s)
                t1 = pc()
                with lock:
                    c = st.completed + 1
                    st.completed = c
                    if st.warmup < c <= st.total and not st.stop:
                        st.latency_ns.append(t1 - t0)
                        st.end_times.append(t1)
                        measured += 1
                    if c == st.warmup:
                        st.win_start = t1
                        st.win_cpu0 = time.process_time()
                        st.win_sw0 = switches()
                    if c == st.total and not st.stop:
                        st.win_cpu1 = time.process_time()
                        st.win_sw1 = switches()
                        st.stop = True
                        st.done.set()
                    elif t1 >= st.deadline_ns and not st.stop:
                        st.win_cpu1 = time.process_time()
                        st.win_sw1 = switches()
                        st.stop = True
                        st.truncated = True
                        st.done.set()
                    if st.stop:
                        break
        finally:
            thread_cpu_ns[idx] = time.thread_time_ns() - c0
            thread_measured[idx] = measured

    ths = [threading.Thread(target=worker, args=(i,), name="gil-bench-%d" % i, daemon=True)
           for i in range(threads)]
    for t in ths:
        t.start()
    mach0 = machine_cpu_s()
    cpu0 = time.process_time()
    st.t_start = pc()
    st.deadline_ns = st.t_start + int(max_seconds * 1e9)
    if warmup == 0:
        st.win_start = st.t_start
        st.win_cpu0 = cpu0
        st.win_sw0 = switches()
    st.go.set()
    if not st.done.wait(timeout=max_seconds + 0.5):
        with st.lock:
            if not st.stop:
                st.win_cpu1 = time.process_time()
                st.win_sw1 = switches()
                st.stop = True
                st.truncated = True
    # Each thread finishes at most its in-flight request; bounded wait.
    join_deadline = time.monotonic() + max(30.0, max_seconds)
    for t in ths:
        t.join(timeout=max(0.0, join_deadline - time.monotonic()))
    stuck = sum(1 for t in ths if t.is_alive())
    t_done = pc()
    cpu_total = time.process_time() - cpu0
    mach1 = machine_cpu_s()
    run_wall = (t_done - st.t_start) / 1e9
    if mach0 is not None and mach1 is not None:
        # CPU that other processes used while this point ran: a point measured
        # on a machine that was not otherwise idle is not a clean measurement.
        other_cpu = max(0.0, (mach1[0] - mach0[0]) - cpu_total)
        steal = mach1[1] - mach0[1]
    else:
        other_cpu = steal = None

    lat_ms = [v / 1e6 for v in st.latency_ns]
    n_meas = len(lat_ms)
    if n_meas and st.win_start is not None:
        wall_ns = max(st.end_times) - st.win_start
        wall_s = wall_ns / 1e9
        tput = n_meas / wall_s if wall_s > 0 else None
    else:
        wall_s = 0.0
        tput = None
    proc_cpu = (st.win_cpu1 - st.win_cpu0) if (st.win_cpu0 is not None and st.win_cpu1 is not None) \
        else None
    # Context switches of all the process's threads over the window (getrusage).
    vol_sw, invol_sw = ((st.win_sw1[0] - st.win_sw0[0], st.win_sw1[1] - st.win_sw0[1])
                        if (st.win_sw0 is not None and st.win_sw1 is not None) else (None, None))
    srt = sorted(lat_ms)
    res = {
        "threads": threads,
        "work_ms": wl.work_ms,
        "held_share": wl.held_share,
        "release_points": wl.k,
        "requests": n_meas,
        "requests_target": n,
        "warmup": warmup,
        "wall_s": rnd(wall_s, 6),
        "throughput_rps": rnd(tput, 4),
        "latency_ms": [rnd(v) for v in lat_ms],
        "p50_ms": rnd(percentile(srt, 50)),
        "p95_ms": rnd(percentile(srt, 95)),
        "p99_ms": rnd(percentile(srt, 99)),
        "mean_ms": rnd(mean(lat_ms)),
        "thread_cpu_ms": [rnd(v / 1e6, 3) for v in thread_cpu_ns],
        "thread_requests": thread_measured,
        "process_cpu_s": rnd(proc_cpu, 6),
        "voluntary_switches": vol_sw,
        "involuntary_switches": invol_sw,
        "cpu_busy": rnd(proc_cpu / wall_s, 4) if (proc_cpu is not None and wall_s > 0) else None,
        "run_wall_s": rnd(run_wall, 6),
        "process_cpu_total_s": rnd(cpu_total, 6),
        "other_cpu_s": rnd(other_cpu, 3),
        "other_cpu_cores": rnd(other_cpu / run_wall, 3) if (other_cpu is not None and run_wall > 0)
        else None,
        "steal_s": rnd(steal, 3),
        "truncated": bool(st.truncated),
    }
    if stuck:
        res["stuck_threads"] = stuck
    return res


# ---------------------------------------------------------------------------
# Grids
# ---------------------------------------------------------------------------

def builtin_grid():
    """(threads, held_share, release_points) at work_ms = 5; 42 points."""
    pts = []

    def add(t, h, k):
        if (t, h, k) not in pts:
            pts.append((t, h, k))

    # The FastAPI-like case: 82% held, frequent release points, every T.
    for t in (1, 2, 4, 8, 16, 64):
        add(t, 0.82, 1000)
    # Release-point sweep at H = 0.82.
    for t in (1, 2, 4, 8):
        for k in (1, 10, 100, 1000, 10000):
            add(t, 0.82, k)
    # Held-share sweep at K = 100 (T = 2 added: it is the core count here).
    for t in (1, 2, 4, 16):
        for h in (0.0, 0.25, 0.5, 0.82, 1.0):
            add(t, h, 100)
    # Many threads.
    add(64, 0.82, 10)
    add(64, 0.5, 100)
    add(64, 0.0, 100)
    return pts


def smoke_grid():
    return [(t, 0.82, k) for k in (10, 1000) for t in (1, 4)]


def plan_requests(profile, threads, ncpu, target_s, lo, hi):
    """Request count so a point's window lasts about target_s, from the profile."""
    r_ms = profile["request_ms_mean"]
    locked = profile["sim"]["locked_ms"]
    lock_frac = min(1.0, max(locked / r_ms, 1e-3)) if r_ms > 0 else 1.0
    parallel = min(float(threads), float(ncpu), 1.0 / lock_frac)
    est_rps = parallel * 1000.0 / r_ms if r_ms > 0 else 100.0
    return int(max(lo, min(hi, round(est_rps * target_s))))


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def header(iter_ns, iter_trial_n, timer_ns, npcal, args, mode):
    try:
        aff = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        aff = list(range(os.cpu_count() or 1))
    return {
        "python": sys.version,
        "python_implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "switch_interval_ms": round(sys.getswitchinterval() * 1000.0, 6),
        "cpus": os.cpu_count(),
        "affinity": aff,
        "mode": mode,
        "seed": args.seed,
        "calibration": {
            "bytecode_round_ns": round(iter_ns, 3),
            "bytecode_trial_rounds": iter_trial_n,
            "timer_overhead_ns": timer_ns,
            "numpy": npcal.to_json(),
        },
    }


def write_json(obj, path):
    text = json.dumps(obj, separators=(",", ":")) + "\n"
    if path is None or path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=d)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


HELP_EPILOG = """\
modes:
  (default)  one point: --threads T at (--work-ms, --held-share, --release-points),
             plus its one-thread profile
  --profile  only the one-thread profile of (--work-ms, --held-share, --release-points)
  --grid     the built-in grid (42 points at work_ms=5, ~2-3 s each, a few minutes)
  --smoke    4 tiny points (T in {1,4}, H=0.82, K in {10,1000}), under ~20 s, for CI

A request is K segments; each segment is pure-Python bytecode (xorshift on an
int, GIL held) costing work_ms*held_share/K, then ONE NumPy ufunc call on
float64 arrays with out= (GIL released in its loop) costing
work_ms*(1-held_share)/K. Arrays have at least 1,024 elements (NumPy releases
the GIL only above 500), so short targets may cost more than asked: the
profile reports what a request really costs alone, measured.

Output: one JSON object (see python/README.md) on stdout or --out FILE
(written atomically). Progress goes to stderr.

examples:
  python/.venv/bin/python python/gil_bench.py --threads 4 --held-share 0.82 --release-points 1000
  python/.venv/bin/python python/gil_bench.py --profile --held-share 0.82 --release-points 1000
  python/.venv/bin/python python/gil_bench.py --grid --out /tmp/gil_grid.json
"""


def build_parser():
    p = argparse.ArgumentParser(
        prog="gil_bench.py",
        description="Measure how CPython's GIL shares one process among T threads whose "
                    "requests mix GIL-holding Python bytecode with GIL-releasing NumPy calls.",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--threads", type=int, default=None, metavar="T",
                   help="worker threads, closed loop, no think time (default 1; 1..%d)"
                        % MAX_THREADS)
    p.add_argument("--work-ms", type=float, default=None, metavar="W",
                   help="target CPU work per request in ms, bytecode + NumPy (default 5)")
    p.add_argument("--held-share", type=float, default=None, metavar="H",
                   help="share of work_ms spent in bytecode holding the GIL, in [0, 1] "
                        "(default 0.82)")
    p.add_argument("--release-points", type=int, default=None, metavar="K",
                   help="segments per request = NumPy calls per request, 1..%d (default 100)"
                        % MAX_RELEASE_POINTS)
    p.add_argument("--requests", type=int, default=None, metavar="N",
                   help="measured requests after warm-up (default 200)")
    p.add_argument("--warmup", type=int, default=None, metavar="N",
                   help="requests completed before measuring starts (default 2*T)")
    p.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="time limit of one point, warm-up included; on expiry the point stops "
                        "and is marked truncated (default 60; in --grid/--smoke each point is "
                        "capped at min(S, 15) / min(S, 5))")
    p.add_argument("--switch-interval-ms", type=float, default=None, metavar="MS",
                   help="sys.setswitchinterval in ms (default: leave CPython's, 5 ms)")
    p.add_argument("--seed", type=int, default=1, help="seed of array contents and "
                   "bytecode state (default 1)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--profile", action="store_true",
                      help="one-thread profile only: bytecode segments and NumPy calls timed "
                           "separately")
    mode.add_argument("--grid", action="store_true", help="run the built-in grid")
    mode.add_argument("--smoke", action="store_true", help="run a tiny grid (< ~20 s)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="write the JSON to FILE atomically (default stdout)")
    return p


def validate(p, a):
    def bad(msg):
        p.error(msg)

    def finite(name, v):
        if v is not None and not math.isfinite(v):
            bad("%s must be a finite number, got %r" % (name, v))

    for name, v in (("--work-ms", a.work_ms), ("--held-share", a.held_share),
                    ("--max-seconds", a.max_seconds),
                    ("--switch-interval-ms", a.switch_interval_ms)):
        finite(name, v)

    if a.grid or a.smoke:
        which = "--grid" if a.grid else "--smoke"
        for name, v in (("--threads", a.threads), ("--work-ms", a.work_ms),
                        ("--held-share", a.held_share), ("--release-points", a.release_points),
                        ("--requests", a.requests), ("--warmup", a.warmup)):
            if v is not None:
                bad("%s cannot be combined with %s (the grid chooses its own points); drop %s"
                    % (name, which, name))
    if a.profile:
        if a.threads is not None and a.threads != 1:
            bad("--profile always runs one thread; drop --threads %d" % a.threads)
        for name, v in (("--requests", a.requests), ("--warmup", a.warmup)):
            if v is not None:
                bad("%s has no effect with --profile (it runs for about a second); drop it" % name)

    if a.threads is not None and not (1 <= a.threads <= MAX_THREADS):
        bad("--threads must be in [1, %d], got %d" % (MAX_THREADS, a.threads))
    if a.work_ms is not None and not (0 < a.work_ms <= MAX_WORK_MS):
        bad("--work-ms must be in (0, %g], got %g" % (MAX_WORK_MS, a.work_ms))
    if a.held_share is not None and not (0.0 <= a.held_share <= 1.0):
        bad("--held-share must be in [0, 1], got %g" % a.held_share)
    if a.release_points is not None and not (1 <= a.release_points <= MAX_RELEASE_POINTS):
        bad("--release-points must be in [1, %d], got %d" % (MAX_RELEASE_POINTS, a.release_points))
    if a.requests is not None and not (1 <= a.requests <= MAX_REQUESTS):
        bad("--requests must be in [1, %d], got %d" % (MAX_REQUESTS, a.requests))
    if a.warmup is not None and not (0 <= a.warmup <= MAX_REQUESTS):
        bad("--warmup must be in [0, %d], got %d" % (MAX_REQUESTS, a.warmup))
    if a.max_seconds is not None and not (0 < a.max_seconds <= 86400):
        bad("--max-seconds must be in (0, 86400], got %g" % a.max_seconds)
    if a.switch_interval_ms is not None and not (0 < a.switch_interval_ms <= 1000):
        bad("--switch-interval-ms must be in (0, 1000], got %g" % a.switch_interval_ms)
    if a.seed is not None and not (0 <= a.seed < 2 ** 63):
        bad("--seed must be in [0, 2**63), got %d" % a.seed)
    if a.out is not None and a.out != "-":
        d = os.path.dirname(os.path.abspath(a.out))
        if not os.path.isdir(d):
            bad("--out directory %s does not exist; create it or pick another path" % d)
        if not os.access(d, os.W_OK):
            bad("--out directory %s is not writable; pick another path" % d)
        if os.path.isdir(a.out):
            bad("--out %s is a directory; give a file path" % a.out)


def check_memory(p, wl, threads):
    need = (threads + 2) * wl.n_elements * 8
    if need > MAX_ARRAY_BYTES:
        p.error("--threads %d with %d-element NumPy arrays needs %.1f GiB; lower --threads or "
                "--work-ms, or raise --release-points"
                % (threads, wl.n_elements, need / float(1 << 30)))


def main(argv=None):
    p = build_parser()
    a = p.parse_args(argv)
    validate(p, a)
    _import_numpy()

    if a.switch_interval_ms is not None:
        sys.setswitchinterval(a.switch_interval_ms / 1000.0)

    t_all = time.perf_counter()
    iter_ns, iter_n = calibrate_bytecode()
    timer_ns = timer_overhead_ns()
    npcal = NumpyCalibration(a.seed)
    log("calibrated: bytecode round %.1f ns, timer %d ns, np.multiply 1024 el %.2f us, "
        "np.sin 1024 el %.2f us, 8-element call %.2f us (%.2f s)"
        % (iter_ns, timer_ns, npcal.model["multiply"]["min_call_us"],
           npcal.model["sin"]["min_call_us"], npcal.tiny_call_us["multiply"],
           time.perf_counter() - t_all))
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count() or 1

    workloads = {}

    def get_workload(w, h, k):
        """The workload of (w, h, k), tuned once to this machine and reused by every T."""
        key = (w, h, k)
        if key not in workloads:
            wl = Workload(w, h, k, iter_ns, npcal)
            wl.tune(a.seed, timer_ns)
            workloads[key] = wl
        return workloads[key]

    def get_profile(wl, budget, when=""):
        t0 = time.perf_counter()
        prof = profile_workload(wl, a.seed, timer_ns, npcal, budget_s=budget)
        log("profile %s%s: alone %.3f ms/request (held %.3f + free %.3f ms; "
            "%.3f us/segment held, %s us/call free; sim locked %.3f free %.3f) [%.1f s]"
            % (wl.describe(), when, prof["request_ms_mean"], prof["held_ms_mean"],
               prof["free_ms_mean"], prof["segment_held_us_mean"] or 0.0,
               prof["call_free_us_mean"], prof["sim"]["locked_ms"], prof["sim"]["free_ms"],
               time.perf_counter() - t0))
        for note in prof["notes"]:
            log("  note: %s" % note)
        return prof

    if a.profile:
        w = a.work_ms if a.work_ms is not None else 5.0
        h = a.held_share if a.held_share is not None else 0.82
        k = a.release_points if a.release_points is not None else 100
        prof = get_profile(get_workload(w, h, k), 1.5)
        out = header(iter_ns, iter_n, timer_ns, npcal, a, "profile")
        out["profile"] = prof
        write_json(out, a.out)
        return 0

    if a.grid or a.smoke:
        grid = builtin_grid() if a.grid else smoke_grid()
        work_ms = 5.0
        if a.grid:
            target_s, lo, hi, cap, budget = 2.0, 30, 3000, 15.0, 0.5
        else:
            target_s, lo, hi, cap, budget = 0.75, 12, 400, 5.0, 0.25
        max_s = min(a.max_seconds, cap) if a.max_seconds is not None else cap
        mode = "grid" if a.grid else "smoke"
    else:
        t = a.threads if a.threads is not None else 1
        grid = [(t, a.held_share if a.held_share is not None else 0.82,
                 a.release_points if a.release_points is not None else 100)]
        work_ms = a.work_ms if a.work_ms is not None else 5.0
        max_s = a.max_seconds if a.max_seconds is not None else 60.0
        budget = 0.5
        mode = "point"

    # Memory check before anything long runs.
    for (t, h, k) in grid:
        wl = Workload(work_ms, h, k, iter_ns, npcal)
        check_memory(p, wl, t)

    points = []
    n_pts = len(grid)
    for i, (t, h, k) in enumerate(grid):
        wl = get_workload(work_ms, h, k)
        check_memory(p, wl, t)
        # The machine this runs on may change speed from one minute to the next (a shared
        # host): each point gets its own profile, measured just before it and just after.
        before = get_profile(wl, budget, " (before)")
        if mode == "point":
            n = a.requests if a.requests is not None else 200
            warm = a.warmup if a.warmup is not None else 2 * t
        else:
            n = plan_requests(before, t, ncpu, target_s, lo, hi)
            warm = 2 * t
        log("[%d/%d] T=%d %s: %d requests after %d warm-up ..."
            % (i + 1, n_pts, t, wl.describe(), n, warm))
        res = run_point(wl, t, n, warm, max_s, a.seed + i)
        # A point during which a virtual machine's host ran something else on the CPUs
        # (steal) measured the host as much as CPython: measured again, twice at most, and
        # the least stolen kept.
        for _ in range(STOLEN_RETRIES):
            if (steal_share(res) or 0.0) <= STEAL_LIMIT:
                break
            log("[%d/%d] T=%d: the host stole %.1f%% of the CPUs' time; measuring again"
                % (i + 1, n_pts, t, 100.0 * steal_share(res)))
            again = run_point(wl, t, n, warm, max_s, a.seed + i)
            if (steal_share(again) or 0.0) < steal_share(res):
                res = again
        res["host_steal_pct"] = rnd(100.0 * (steal_share(res) or 0.0), 2)
        res["profile"] = merge_profiles(before, get_profile(wl, budget, " (after)"))
        points.append(res)
        oc = res["other_cpu_cores"]
        log("[%d/%d] T=%d %s: %s rps, p50 %s ms, p95 %s ms, cpu busy %s, %.2f s%s%s"
            % (i + 1, n_pts, t, wl.describe(),
               "%.1f" % res["throughput_rps"] if res["throughput_rps"] is not None else "n/a",
               res["p50_ms"], res["p95_ms"], res["cpu_busy"], res["run_wall_s"],
               " TRUNCATED" if res["truncated"] else "",
               (" (other processes used %.2f cores meanwhile: not a clean measurement)" % oc)
               if (oc is not None and oc > 0.15) else ""))

    out = header(iter_ns, iter_n, timer_ns, npcal, a, mode)
    out["total_wall_s"] = round(time.perf_counter() - t_all, 3)
    out["points"] = points
    write_json(out, a.out)
    log("done: %d points in %.1f s" % (len(points), time.perf_counter() - t_all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
