#!/bin/sh
# deps.sh - makes sure what dynrec builds with is present, installs with apt-get only what is
# really absent, and finds or builds llama.cpp (scripts/llama.sh), writing build/llama.mk for
# the Makefile. Called by `make` once (build/llama.mk remembers it); safe to run again.
#
# Presence is decided by the thing itself, never by a package name: a tool by `command -v`
# (an npm, cmake or clang from any source is used as it is), a library by `pkg-config` or, when
# pkg-config does not know it, by the compiler finding its header; dpkg is asked only when there
# is no compiler yet to ask. Only the packages for what is absent go to apt-get.
#
#   DEPS_DRY_RUN=1   report each decision and what would be installed; install and build nothing
#   CC=...           the compiler used to look for headers (default cc)
#
# llama.cpp, in this order: LLAMA_DIR=/prefix (include/llama.h, lib/libllama.a ...); a
# llama.cpp that pkg-config knows (`pkg-config llama`); otherwise the static CPU build that
# scripts/llama.sh makes once from npm's node-llama-cpp@3.21.1 into ~/.cache/dynrec.
#
# The dashboard: npm's uplot@1.6.32 (its minified dist files and LICENSE, embedded by the build) and,
# for the browser test, npm's playwright-core@1.58.2 and a chromium binary (Debian's
# `chromium`), fetched once into the same cache. When npm cannot fetch them the build goes on
# (the dashboard without charts) and says so; the browser test then fails.
set -eu
cd "$(dirname "$0")/.."

DRY=${DEPS_DRY_RUN:-0}
CC=${CC:-cc}
CACHE="${DYNREC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dynrec}"
# the system's CA bundle: npm reaches its registry over TLS, and where a proxy's own CA is
# trusted it is through this file (npm's cafile setting), not through Node's built-in list
CA_BUNDLE=${DEPS_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

# What the build needs, one row each: KIND NAME PROBE PACKAGE
#   tool NAME -     PACKAGE   present when `command -v NAME` finds it
#   lib  HEADER PC  PACKAGE   present when `pkg-config --exists PC` or the compiler finds HEADER
#   hpp  HEADER -   PACKAGE   a C++ header-only library: present when c++ finds HEADER
#   rt   NAME -     PACKAGE   clang's runtime library NAME (libFuzzer, for `make fuzz`)
#   file PATH -     PACKAGE   present when PATH exists
NEEDS='
tool cc             -              build-essential
tool make           -              make
tool pkg-config     -              pkg-config
tool c++            -              g++
lib  openblas_config.h openblas    libopenblas-dev
lib  cmocka.h       cmocka         libcmocka-dev
lib  jansson.h      jansson        libjansson-dev
lib  sqlite3.h      sqlite3        libsqlite3-dev
lib  microhttpd.h   libmicrohttpd  libmicrohttpd-dev
lib  curl/curl.h    libcurl        libcurl4-openssl-dev
lib  hiredis/hiredis.h hiredis     libhiredis-dev
hpp  hnswlib/hnswlib.h -           libhnswlib-dev
tool curl           -              curl
tool clang          -              clang
tool redis-server   -              redis-server
tool gnuplot        -              gnuplot-nox
tool jq             -              jq
tool node           -              nodejs
tool npm            -              npm
tool chromium       -              chromium
rt   fuzzer         -              libclang-rt-14-dev
'
# needed only to build llama.cpp from the npm bundle (scripts/llama.sh)
LLAMA_NEEDS='
tool npm            -              npm
tool git            -              git
tool cmake          -              cmake
tool c++            -              g++
file $CA_BUNDLE     -              ca-certificates
'

say() { [ "$DRY" = 1 ] && echo "deps: $*"; return 0; }
has_tool() { command -v "$1" >/dev/null 2>&1; }
dpkg_has() {
    has_tool dpkg-query &&
        dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
has_header() { # HEADER: the compiler finds it on its own include path
    printf '#include <%s>\n' "$1" | "$CC" -E -x c - >/dev/null 2>&1
}

missing=""
check() { # KIND NAME PROBE PACKAGE
    kind=$1 name=$2 probe=$3 pkg=$4
    case $kind in
    tool)
        if has_tool "$name"; then say "$name: found at $(command -v "$name")"; return; fi
        say "$name: not on PATH" ;;
    lib)
        if has_tool pkg-config && pkg-config --exists "$probe" 2>/dev/null; then
            say "$name: pkg-config knows $probe"; return
        fi
        if has_tool "$CC"; then
            if has_header "$name"; then say "$name: found by $CC"; return; fi
            say "$name: $CC does not find it"
        elif dpkg_has "$pkg"; then
            say "$name: no compiler to ask; dpkg lists $pkg"; return
        else
            say "$name: no compiler to ask and dpkg does not list $pkg"
        fi ;;
    hpp)
        if has_tool c++ && printf '#include <%s>\n' "$name" | c++ -E -x c++ - >/dev/null 2>&1; then
            say "$name: found by c++"; return
        fi
        say "$name: c++ does not find it" ;;
    file)
        if [ -e "$name" ]; then say "$name: present"; return; fi
        say "$name: absent" ;;
    rt)
        if ! has_tool clang; then say "clang runtime: comes with clang"
        else
            dir=$(clang -print-resource-dir 2>/dev/null || true)
            if [ -n "$dir" ] && ls "$dir"/lib/*/libclang_rt."$name"*.a >/dev/null 2>&1; then
                say "clang $name runtime: found in $dir"; return
            fi
            major=$(clang -dumpversion 2>/dev/null | cut -d. -f1)
            [ -n "$major" ] && pkg="libclang-rt-$major-dev"
            say "clang $name runtime: not found"
        fi ;;
    esac
    case " $missing " in *" $pkg "*) ;; *) missing="$missing $pkg" ;; esac
}
check_all() { # ROWS
    while read -r kind name probe pkg; do
        [ "$name" = '$CA_BUNDLE' ] && name=$CA_BUNDLE
        if [ -n "$kind" ]; then check "$kind" "$name" "$probe" "$pkg"; fi
    done <<EOF
$1
EOF
}

need_llama_build=1
if [ -n "${LLAMA_DIR:-}" ]; then
    need_llama_build=0; say "llama.cpp: LLAMA_DIR=$LLAMA_DIR"
elif [ -f "$CACHE/llama.cpp-nlc3.21.1/.dynrec-ok" ]; then
    need_llama_build=0; say "llama.cpp: built in $CACHE/llama.cpp-nlc3.21.1"
elif has_tool pkg-config && pkg-config --exists llama 2>/dev/null; then
    need_llama_build=0; say "llama.cpp: pkg-config knows llama"
else
    say "llama.cpp: not built yet; will build from npm's node-llama-cpp@3.21.1"
fi

check_all "$NEEDS"
[ "$need_llama_build" = 1 ] && check_all "$LLAMA_NEEDS"

if [ "$DRY" = 1 ]; then
    if [ -n "$missing" ]; then echo "deps: would install:$missing"
    else echo "deps: would install: nothing"; fi
    exit 0
fi

if [ -n "$missing" ]; then
    echo "deps: installing:$missing"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        if has_tool sudo; then SUDO="sudo"; else
            echo "deps: need root to install:$missing" >&2
            echo "deps: run as root: apt-get install -y$missing" >&2
            echo "deps: (or install the same things from any other source, then run make again)" >&2
            exit 1
        fi
    fi
    if ! has_tool apt-get; then
        echo "deps: apt-get not found; install by hand:$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $missing; }; then
        echo "deps: apt-get could not install:$missing" >&2
        echo "deps: apt's own message is above; fix what it names, then run by hand:" >&2
        echo "deps:   ${SUDO:+sudo }apt-get install -y --no-install-recommends$missing" >&2
        echo "deps: and run make again (anything already present from another source is kept)" >&2
        exit 1
    fi
    # what apt installed must now be found the same way
    missing=""
    check_all "$NEEDS"
    [ "$need_llama_build" = 1 ] && check_all "$LLAMA_NEEDS"
    if [ -n "$missing" ]; then
        echo "deps: still not found after apt-get:$missing" >&2
        echo "deps: rerun with DEPS_DRY_RUN=1 to see each check" >&2
        exit 1
    fi
fi

mkdir -p build
if [ "$need_llama_build" = 0 ] && [ -z "${LLAMA_DIR:-}" ] &&
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
# the dashboard's npm packages, once into the cache (scripts/embed.sh, tests/e2e/dashboard.sh)
UPLOT_VERSION=1.6.32
PW_VERSION=1.58.2
npm_pack() { # NAME@VERSION WORKDIR: the package's tarball unpacked into WORKDIR/package
    mkdir -p "$2" &&
        (cd "$2" && npm pack --loglevel=error "$1" >/dev/null 2>"$2/npm.log") &&
        tar -xzf "$2"/*.tgz -C "$2"
}
uplot_dir="$CACHE/uplot-$UPLOT_VERSION"
if [ ! -f "$uplot_dir/.dynrec-ok" ] || [ ! -f "$uplot_dir/uPlot.iife.min.js" ]; then
    w="$CACHE/uplot-fetch.$$"
    rm -rf "$w" "$uplot_dir"
    if npm_pack "uplot@$UPLOT_VERSION" "$w" && mkdir -p "$uplot_dir" &&
        cp "$w/package/dist/uPlot.iife.min.js" "$w/package/dist/uPlot.min.css" "$w/package/LICENSE" "$uplot_dir/"; then
        touch "$uplot_dir/.dynrec-ok"
    else
        echo "deps: could not fetch uplot@$UPLOT_VERSION from npm ($(tail -n 1 "$w/npm.log" 2>/dev/null)): the dashboard is built without charts" >&2
        rm -rf "$uplot_dir"
    fi
    rm -rf "$w"
fi
pw_dir="$CACHE/playwright-core-$PW_VERSION"
if [ ! -f "$pw_dir/.dynrec-ok" ]; then
    w="$CACHE/pw-fetch.$$"
    rm -rf "$w" "$pw_dir"
    if npm_pack "playwright-core@$PW_VERSION" "$w" && mv "$w/package" "$pw_dir"; then
        touch "$pw_dir/.dynrec-ok"
    else
        echo "deps: could not fetch playwright-core@$PW_VERSION from npm: the browser test will fail" >&2
        rm -rf "$pw_dir"
    fi
    rm -rf "$w"
fi
{
    echo "UPLOT_DIR := $( [ -f "$uplot_dir/.dynrec-ok" ] && echo "$uplot_dir")"
    echo "PLAYWRIGHT_CORE := $( [ -f "$pw_dir/.dynrec-ok" ] && echo "$pw_dir")"
    echo "CHROMIUM := $(command -v chromium || true)"
} >>build/llama.mk.tmp
mv build/llama.mk.tmp build/llama.mk
echo "deps: ok (llama.cpp: $prefix)"
