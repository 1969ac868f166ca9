#!/bin/sh
# cycles.sh - no dependency cycle between the library's files (scripts/cycles.sh over the
# objects of the build under test: direct includes and calls).
set -u
DYNREC=${DYNREC:-build/release/dynrec}
sh scripts/cycles.sh "$(dirname "$DYNREC")"
