#!/usr/bin/env bash
# Create (or reuse) python/.venv for the GIL benchmark harness and print the
# venv's python path as the last line of stdout.
#
# Usage: python/make_venv.sh            (PYTHON=/path/to/python3 to pick another interpreter)
#
# Idempotent: a venv whose stamp file matches the hash of requirements.txt (and
# the interpreter version) is reused without touching the network.
# On failure it exits non-zero with ONE line on stderr starting "make_venv: ",
# suitable for a caller to print as a skip reason.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
req="$here/requirements.txt"
stamp="$venv/.requirements.stamp"
py="${PYTHON:-python3}"

fail() {
    echo "make_venv: $*" >&2
    exit 1
}

[[ -f "$req" ]] || fail "missing $req"
command -v "$py" >/dev/null 2>&1 || fail "no '$py' on PATH (install Python 3.9+ or set PYTHON=...)"
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null \
    || fail "$("$py" --version 2>&1 | head -n1) is too old: Python 3.9+ is needed"
"$py" -c 'import venv, ensurepip' >/dev/null 2>&1 \
    || fail "'$py' has no working venv/ensurepip module (on Debian/Ubuntu: apt-get install python3-venv)"

hash_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        "$py" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
    fi
}
want="$(hash_of "$req") $("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"

# Reuse when the stamp matches and the venv's python still runs.
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
    && "$venv/bin/python" -c 'import numpy' >/dev/null 2>&1; then
    echo "$venv/bin/python"
    exit 0
fi

log="$(mktemp "${TMPDIR:-/tmp}/make_venv.XXXXXX")"
trap 'rm -f "$log"' EXIT

# Stale or broken venv: start over.
rm -rf "$venv"
if ! "$py" -m venv "$venv" >"$log" 2>&1; then
    rm -rf "$venv"
    fail "'$py -m venv' failed: $(grep -v '^\s*$' "$log" | tail -n1)"
fi

if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input --timeout 20 --retries 2 -r "$req" >"$log" 2>&1; then
    reason="$(grep -E 'ERROR|error|Could not|No matching' "$log" | head -n1 || true)"
    [[ -n "$reason" ]] || reason="$(grep -v '^\s*$' "$log" | tail -n1 || true)"
    rm -rf "$venv"
    fail "pip could not install $(basename "$req") (is the package index reachable?): ${reason:-unknown error}"
fi

"$venv/bin/python" -c 'import numpy' >"$log" 2>&1 \
    || { rm -rf "$venv"; fail "numpy installed but does not import: $(tail -n1 "$log")"; }

echo "$want" >"$stamp"
echo "$venv/bin/python"
