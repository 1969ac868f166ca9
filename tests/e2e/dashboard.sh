#!/bin/sh
# dashboard.sh - the dashboard in headless chromium (tests/browser/dashboard.test.mjs, node
# --test, playwright-core): a small synthetic model is trained here and the test starts its
# own `dynrec serve`. chromium and playwright-core come from scripts/deps.sh (build/llama.mk
# says where); skipped only when node or chromium is absent.
set -u
DYNREC=${DYNREC:-build/release/dynrec}
mk=build/llama.mk
val() { sed -n "s/^$1 := //p" "$mk" 2>/dev/null | head -n 1; }
CHROMIUM=${CHROMIUM:-$(val CHROMIUM)}
[ -n "$CHROMIUM" ] || CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
PLAYWRIGHT_CORE=${PLAYWRIGHT_CORE:-$(val PLAYWRIGHT_CORE)}
if ! command -v node >/dev/null 2>&1; then
    echo "SKIP: node is not installed (scripts/deps.sh installs it), the dashboard is not checked in a browser"
    exit 0
fi
if [ -z "$CHROMIUM" ] || [ ! -x "$CHROMIUM" ]; then
    echo "SKIP: no chromium binary (scripts/deps.sh installs Debian's chromium), the dashboard is not checked in a browser"
    exit 0
fi
if [ -z "$PLAYWRIGHT_CORE" ] || [ ! -f "$PLAYWRIGHT_CORE/index.mjs" ]; then
    echo "FAIL: playwright-core is not in the cache (scripts/deps.sh fetches it; see build/llama.mk)"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$DYNREC data synth --seed 11 --users 200 --items 150 --events 6000 --out "$tmp/d" >/dev/null 2>&1 || { echo "FAIL: synth"; exit 1; }
$DYNREC train --model mf --data "$tmp/d" --out "$tmp/m.drm" --epochs 10 >/dev/null 2>&1 || { echo "FAIL: train"; exit 1; }
BUILD_DIR=$(dirname "$DYNREC")
DYNREC="$DYNREC" MODEL="$tmp/m.drm" DATA="$tmp/d" CHROMIUM="$CHROMIUM" PLAYWRIGHT_CORE="$PLAYWRIGHT_CORE" \
    SHOTS="${SHOTS:-$BUILD_DIR/../ui-shots}" node --test --test-reporter=spec tests/browser/dashboard.test.mjs
