#!/bin/sh
# demo.sh - the main job on the embedded default: `make demo` runs it after building.
set -eu
BIN=${1:-build/release/dynrec}
exec "$BIN" demo --out build/demo-data
