#!/bin/sh
# deps.sh - installs the Debian packages dynrec builds with, when they are missing, and finds
# or builds llama.cpp (scripts/llama.sh), writing build/llama.mk for the Makefile.
# Called by `make` (once; build/llama.mk and build/.deps-ok remember it). Safe to run again: it
# only installs what dpkg does not already list. Needs root (or sudo) the first time on a
# fresh machine.
#
# llama.cpp, in this order: LLAMA_DIR=/prefix (include/llama.h, lib/libllama.a ...); a
# llama.cpp that pkg-config knows (`pkg-config llama`); otherwise the static CPU build that
# scripts/llama.sh makes once from npm's node-llama-cpp@3.21.1 into ~/.cache/dynrec.
set -eu
cd "$(dirname "$0")/.."

PKGS="build-essential pkg-config libopenblas-dev libcmocka-dev libjansson-dev libsqlite3-dev \
libmicrohttpd-dev libcurl4-openssl-dev curl clang libclang-rt-14-dev"
# needed only to build llama.cpp from the npm bundle
LLAMA_BUILD_PKGS="cmake git g++ npm"

CACHE="${DYNREC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dynrec}"
need_llama_build=1
if [ -n "${LLAMA_DIR:-}" ] || [ -f "$CACHE/llama.cpp-nlc3.21.1/.dynrec-ok" ] ||
   pkg-config --exists llama 2>/dev/null; then
    need_llama_build=0
fi
[ "$need_llama_build" = 1 ] && PKGS="$PKGS $LLAMA_BUILD_PKGS"

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

mkdir -p build
if [ -z "${LLAMA_DIR:-}" ] && pkg-config --exists llama 2>/dev/null &&
   [ ! -f "$CACHE/llama.cpp-nlc3.21.1/.dynrec-ok" ]; then
    # a system llama.cpp: its own flags (shared or static, as it was installed)
    prefix=$(pkg-config --variable=prefix llama)
    {
        echo "LLAMA_DIR := $prefix"
        echo "LLAMA_CFLAGS := $(pkg-config --cflags llama)"
        echo "LLAMA_LIBS := $(pkg-config --libs --static llama) -lstdc++"
        echo "LLAMA_SERVER := $(command -v llama-server || true)"
    } >build/llama.mk.tmp
else
    prefix=$(sh scripts/llama.sh) || { echo "deps: building llama.cpp failed (scripts/llama.sh)" >&2; exit 1; }
    prefix=$(printf '%s\n' "$prefix" | tail -n 1)
    libs=""
    for l in llama ggml ggml-cpu ggml-base; do
        [ -f "$prefix/lib/lib$l.a" ] || { echo "deps: $prefix/lib/lib$l.a is missing" >&2; exit 1; }
        libs="$libs $prefix/lib/lib$l.a"
    done
    {
        echo "LLAMA_DIR := $prefix"
        echo "LLAMA_CFLAGS := -I$prefix/include"
        echo "LLAMA_LIBS :=$libs -lstdc++"
        echo "LLAMA_SERVER := $( [ -x "$prefix/bin/llama-server" ] && echo "$prefix/bin/llama-server")"
    } >build/llama.mk.tmp
fi
mv build/llama.mk.tmp build/llama.mk
echo "deps: ok (llama.cpp: $prefix)"
