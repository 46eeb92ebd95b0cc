#!/usr/bin/env bash
# The FastAPI example, whole: make the venv, measure what CPython's GIL costs a thread that
# takes it after a wait (python/cold_start.py), calibrate the service from outside (servesim
# starts, loads and stops it itself through scenario.toml's [target]), then validate the
# three routes at 1…64 users with uvicorn --workers 1 and 2.
#
# Usage: examples/fastapi/run.sh            the whole run (about 10 minutes on 2 cores)
#        examples/fastapi/run.sh --smoke    a short one for CI (about 2 minutes): a 20 s
#                                           calibration, then 2 and 8 users, one worker,
#                                           and one point on two workers (users per
#                                           worker read from x-worker-pid)
#
# Writes examples/fastapi/scenario.calibration.json (the ramp, the fit, its CIs),
# examples/fastapi/scenario.calibrated.toml (the scenario with the fitted costs, for
# what-ifs), examples/fastapi/validation/ (report.md, validation.csv, validation.json) and
# examples/fastapi/plots/. With --smoke, everything goes under a temporary directory.
# If the venv cannot be made (no python3, no network), prints one line "SKIPPED …" with
# the reason and exits 0.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

smoke=0
[[ "${1:-}" == "--smoke" ]] && smoke=1

if ! venv_log=$(bash "$here/make_venv.sh" 2>&1); then
    echo "SKIPPED the FastAPI example: its venv could not be made: $(printf '%s\n' "$venv_log" | tail -n 1)"
    exit 0
fi
command -v taskset >/dev/null 2>&1 || { echo "SKIPPED the FastAPI example: no taskset (util-linux) to pin the service"; exit 0; }

cargo build --release --quiet
servesim="$root/target/release/servesim"

# What a take of the GIL after a wait costs in cold caches, measured with this venv's
# CPython on this machine (python/cold_start.py; the calibration and the fit use it).
cold=$("$here/.venv/bin/python" "$root/python/cold_start.py" --reps 40 | tail -n 1)
echo "cold start: $cold"
read -r -a cold_set <<< "$cold"

if [[ $smoke == 1 ]]; then
    out="$(mktemp -d "${TMPDIR:-/tmp}/servesim-fastapi.XXXXXX")"
    trap 'rm -rf "$out"' EXIT
    cp "$here/scenario.toml" "$out/scenario.toml"
    # The copy runs the app from here.
    sed -i "s|^\[target\]|[target]\ncwd = \"$here\"|" "$out/scenario.toml"
    timeout 300 "$servesim" calibrate --target "$out/scenario.toml" --budget-s 20 --ramp 1,2,4 "${cold_set[@]}"
    timeout 300 "$servesim" validate --target "$out/scenario.calibrated.toml" \
        --sweep worker.handler=sync,async-blocking,async-offload --sweep clients.users=2,8 \
        --requests 100 --out "$out/validation" --plots "$out/plots"
    timeout 300 "$servesim" validate --target "$out/scenario.calibrated.toml" \
        --set worker.handler='"sync"' --sweep system.workers=2 --sweep clients.users=8 \
        --requests 100 --out "$out/validation-workers" --plots "$out/plots-workers"
    exit 0
fi

"$servesim" calibrate --target "$here/scenario.toml" "${cold_set[@]}"
"$servesim" validate --target "$here/scenario.calibrated.toml" \
    --out "$here/validation" --plots "$here/plots"

# Memory: every process of the service (uvicorn's supervisor and its workers), at 8 users.
for w in 1 2; do
    echo "== --workers $w, async-blocking, 8 users: throughput and memory"
    "$servesim" measure "$here/scenario.calibrated.toml" --set system.workers=$w \
        --set worker.handler='"async-blocking"' --set clients.users=8 --set run.requests=400 --json \
        | python3 -c 'import json,sys; r=json.load(sys.stdin); print("throughput %.1f req/s, p95 %.1f ms, memory %.1f MB in %d processes: %s" % (r["throughput_rps"], r["latency_ms"]["p95"], r["memory_mb"], len(r["workers"]), ", ".join("%.1f MB" % (p["rss_kb"]/1024) for p in r["workers"])))'
done
