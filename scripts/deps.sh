#!/bin/sh
# deps.sh - installs the Debian packages dynrec builds with, when they are missing.
# Called by `make` (once; build/.deps-ok remembers it). Safe to run again: it only installs
# what dpkg does not already list. Needs root (or sudo) the first time on a fresh machine.
set -eu

PKGS="build-essential pkg-config libopenblas-dev libcmocka-dev libjansson-dev libsqlite3-dev \
libmicrohttpd-dev libcurl4-openssl-dev curl clang libclang-rt-14-dev"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "deps: installing:$missing"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
            echo "deps: need root to install:$missing" >&2
            echo "deps: run: apt-get install -y$missing" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
echo "deps: ok"
