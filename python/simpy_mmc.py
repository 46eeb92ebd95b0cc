#!/usr/bin/env python3
"""The M/M/4 of servesim's models/mmc.toml in SimPy, timed: Poisson arrivals at 3.6/s,
exponential service of mean 1 s, 4 servers (rho = 0.9). Prints one JSON object:
customers served, wall seconds, customers per second, and the mean response time (s) as a
check against Erlang C (2.9694 s).

Usage: python simpy_mmc.py [--customers N] [--seed S]
"""
import argparse
import json
import random
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=200_000, help="customers to serve (default 200000)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not 1 <= args.customers <= 100_000_000:
        print(f"--customers must be in [1, 1e8], got {args.customers}", file=sys.stderr)
        return 2
    import simpy

    rng = random.Random(args.seed)
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=4)
    done = {"n": 0, "sum": 0.0}

    def customer(env):
        t0 = env.now
        with servers.request() as req:
            yield req
            yield env.timeout(rng.expovariate(1.0))
        done["n"] += 1
        done["sum"] += env.now - t0

    def source(env):
        for _ in range(args.customers):
            yield env.timeout(rng.expovariate(3.6))
            env.process(customer(env))

    env.process(source(env))
    t0 = time.perf_counter()
    env.run()
    wall = time.perf_counter() - t0
    print(json.dumps({
        "simpy": simpy.__version__,
        "customers": done["n"],
        "wall_s": wall,
        "customers_per_s": done["n"] / wall,
        "mean_response_s": done["sum"] / max(done["n"], 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
