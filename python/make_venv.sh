#!/usr/bin/env bash
# Create (or reuse) python/.venv for the GIL benchmark harness and print the
# venv's python path as the last line of stdout.
#
# Usage: python/make_venv.sh [REQUIREMENTS [VENV_DIR [IMPORT_CHECK_MODULE]]]
#        (PYTHON=/path/to/python3 to pick another interpreter)
# The defaults are python/requirements.txt, python/.venv and numpy; another project
# (e.g. examples/fastapi/make_venv.sh) passes its own. Relative paths are taken from the
# current directory.
#
# Idempotent: a venv whose stamp file matches the hash of the requirements file (and
# the interpreter version) is reused without touching the network.
# On failure it exits non-zero with ONE line on stderr starting "make_venv: ",
# suitable for a caller to print as a skip reason.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="${1:-$here/requirements.txt}"
venv="${2:-$here/.venv}"
check_module="${3:-numpy}"
py="${PYTHON:-python3}"

fail() {
    echo "make_venv: $*" >&2
    exit 1
}

[[ -f "$req" ]] || fail "missing $req"
req="$(cd "$(dirname "$req")" && pwd)/$(basename "$req")"
[[ -d "$(dirname "$venv")" ]] || fail "no directory $(dirname "$venv") for the venv $venv"
venv="$(cd "$(dirname "$venv")" && pwd)/$(basename "$venv")"
stamp="$venv/.requirements.stamp"
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
    && "$venv/bin/python" -c "import $check_module" >/dev/null 2>&1; then
    echo "$venv/bin/python"
    exit 0
fi

log="$(mktemp "${TMPDIR:-/tmp}/make_venv.XXXXXX")"
trap 'rm -f "$log"' EXIT

# Stale or broken venv: start over (but never wipe a directory that is not a venv).
if [[ -e "$venv" && ! -f "$venv/pyvenv.cfg" ]] && [[ -n "$(ls -A "$venv" 2>/dev/null)" ]]; then
    fail "$venv exists and is not a venv: not touching it"
fi
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

"$venv/bin/python" -c "import $check_module" >"$log" 2>&1 \
    || { rm -rf "$venv"; fail "$check_module installed but does not import: $(tail -n1 "$log")"; }

echo "$want" >"$stamp"
echo "$venv/bin/python"
