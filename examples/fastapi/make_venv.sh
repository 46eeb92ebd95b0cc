#!/usr/bin/env bash
# Create (or reuse) examples/fastapi/.venv and print its python as the last stdout line (see python/make_venv.sh).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../../python/make_venv.sh" "$here/requirements.txt" "$here/.venv" fastapi
