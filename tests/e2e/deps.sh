#!/bin/sh
# deps.sh - the set-up logic of scripts/deps.sh, without network and without root: each case
# runs it with a PATH that holds only stub tools (and the few real utilities the script uses),
# so what is "present" is what the case says, and apt-get and id are stubs that record or fail.
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$(pwd)
n=0
fail() { echo "FAIL: $*"; exit 1; }
ok() { n=$((n + 1)); }

# a stub world: $1 = folder; the real utilities the script itself needs
world() {
    w=$1
    rm -rf "$w"
    mkdir -p "$w/bin" "$w/cache" "$w/clang-rt/lib/linux"
    for u in sh cat grep cut ls tail mkdir mv dirname rm tr sed head; do
        p=$(command -v "$u") || fail "no $u on this machine"
        ln -s "$p" "$w/bin/$u"
    done
    touch "$w/clang-rt/lib/linux/libclang_rt.fuzzer-x86_64.a" "$w/ca-certificates.crt"
    # the compiler finds every header except those listed in $w/no-headers
    cat >"$w/bin/cc" <<EOF
#!/bin/sh
h=\$(sed -n 's/^#include <\(.*\)>\$/\1/p')
grep -qx "\$h" "$w/no-headers" 2>/dev/null && exit 1
exit 0
EOF
    # pkg-config knows nothing (headers decide), except the modules in $w/pc
    cat >"$w/bin/pkg-config" <<EOF
#!/bin/sh
[ "\$1" = --exists ] && grep -qx "\$2" "$w/pc" 2>/dev/null && exit 0
exit 1
EOF
    cat >"$w/bin/clang" <<EOF
#!/bin/sh
case "\$1" in -print-resource-dir) echo "$w/clang-rt" ;; -dumpversion) echo 14.0.6 ;; esac
EOF
    # dpkg lists only the packages in $w/dpkg (npm is never among them: as on a machine whose
    # Node.js came from elsewhere)
    cat >"$w/bin/dpkg-query" <<EOF
#!/bin/sh
for a; do p=\$a; done
grep -qx "\$p" "$w/dpkg" 2>/dev/null && { printf 'install ok installed'; exit 0; }
exit 1
EOF
    # apt-get records its arguments; update works, install fails as apt does with held packages
    cat >"$w/bin/apt-get" <<EOF
#!/bin/sh
echo "\$*" >>"$w/apt.log"
[ "\$1" = update ] && exit 0
echo "E: Unable to correct problems, you have held broken packages." >&2
exit 100
EOF
    printf '#!/bin/sh\necho "${STUB_UID:-0}"\n' >"$w/bin/id"
    for t in make curl npm git cmake c++ redis-server gnuplot jq node chromium; do printf '#!/bin/sh\nexit 0\n' >"$w/bin/$t"; done
    chmod +x "$w/bin/"*
}
deps() { # world, then env assignments; runs scripts/deps.sh in that world
    w=$1
    shift
    env -i PATH="$w/bin" HOME="$w" DYNREC_CACHE="$w/cache" DEPS_CA_BUNDLE="$w/ca-certificates.crt" "$@" \
        "$w/bin/sh" "$root/scripts/deps.sh" >"$w/out" 2>&1
}
would() { sed -n 's/^deps: would install: *//p' "$1/out"; }
say() { echo "  $1: would install: $(would "$2")"; } # the decision, for the log

# 1. npm present from another source (dpkg does not list it), llama.cpp not built: nothing to
#    install, npm used as it is
w=$tmp/w1
world "$w"
deps "$w" DEPS_DRY_RUN=1 || fail "dry run: $(cat "$w/out")"
[ "$(would "$w")" = nothing ] || fail "npm from elsewhere: $(cat "$w/out")"
grep -q "^deps: npm: found at $w/bin/npm" "$w/out" || fail "npm decision not reported: $(cat "$w/out")"
grep -q "llama.cpp: not built yet" "$w/out" || fail "llama decision: $(cat "$w/out")"
say "case 1" "$w"
ok

# 2. a library header missing: its -dev package, and only it, is named
w=$tmp/w2
world "$w"
echo jansson.h >"$w/no-headers"
echo microhttpd.h >>"$w/no-headers"
echo libmicrohttpd >"$w/pc" # pkg-config knows this one: present despite the header check
deps "$w" DEPS_DRY_RUN=1 || fail "dry run 2: $(cat "$w/out")"
[ "$(would "$w")" = libjansson-dev ] || fail "missing jansson.h: $(cat "$w/out")"
say "case 2" "$w"
ok

# 3. cmake absent and llama.cpp not built yet: cmake named; once llama.cpp is built, it is not
w=$tmp/w3
world "$w"
rm "$w/bin/cmake"
deps "$w" DEPS_DRY_RUN=1 || fail "dry run 3: $(cat "$w/out")"
[ "$(would "$w")" = cmake ] || fail "cmake absent: $(cat "$w/out")"
say "case 3, llama.cpp not built" "$w"
mkdir -p "$w/cache/llama.cpp-nlc3.21.1"
touch "$w/cache/llama.cpp-nlc3.21.1/.dynrec-ok"
deps "$w" DEPS_DRY_RUN=1 || fail "dry run 3b: $(cat "$w/out")"
[ "$(would "$w")" = nothing ] || fail "cmake asked for with llama.cpp built: $(cat "$w/out")"
say "case 3, llama.cpp built" "$w"
ok

# 3b. no system CA bundle (npm from elsewhere reads it through its cafile setting): named
#     while llama.cpp is still to be fetched, not once it is built
w=$tmp/w3b
world "$w"
rm "$w/ca-certificates.crt"
deps "$w" DEPS_DRY_RUN=1 || fail "dry run 3b: $(cat "$w/out")"
[ "$(would "$w")" = ca-certificates ] || fail "no CA bundle: $(cat "$w/out")"
say "case 3b, llama.cpp not built" "$w"
mkdir -p "$w/cache/llama.cpp-nlc3.21.1"
touch "$w/cache/llama.cpp-nlc3.21.1/.dynrec-ok"
deps "$w" DEPS_DRY_RUN=1 || fail "dry run 3c: $(cat "$w/out")"
[ "$(would "$w")" = nothing ] || fail "CA bundle asked for with llama.cpp built: $(cat "$w/out")"
say "case 3b, llama.cpp built" "$w"
ok

# 4. no compiler at all: the compiler's package, and the libraries by dpkg
w=$tmp/w4
world "$w"
rm "$w/bin/cc" "$w/bin/npm" "$w/bin/curl"
printf 'libopenblas-dev\nlibcmocka-dev\nlibjansson-dev\nlibsqlite3-dev\nlibmicrohttpd-dev\nlibhiredis-dev\n' >"$w/dpkg"
deps "$w" DEPS_DRY_RUN=1 || fail "dry run 4: $(cat "$w/out")"
[ "$(would "$w")" = "build-essential libcurl4-openssl-dev curl npm" ] || fail "no compiler: $(cat "$w/out")"
say "case 4" "$w"
ok

# 4b. no redis-server (test_log's redis kind) and no hiredis header: both named
w=$tmp/w4b
world "$w"
rm "$w/bin/redis-server"
echo hiredis/hiredis.h >"$w/no-headers"
deps "$w" DEPS_DRY_RUN=1 || fail "dry run 4b: $(cat "$w/out")"
[ "$(would "$w")" = "libhiredis-dev redis-server" ] || fail "no redis: $(cat "$w/out")"
say "case 4b" "$w"
ok

# 4c. no gnuplot and no jq (bench/plots.sh, the charts in docs/BENCH.md): Debian's gnuplot-nox
#     and jq; any gnuplot on PATH is used as it is
w=$tmp/w4c
world "$w"
rm "$w/bin/gnuplot" "$w/bin/jq"
deps "$w" DEPS_DRY_RUN=1 || fail "dry run 4c: $(cat "$w/out")"
[ "$(would "$w")" = "gnuplot-nox jq" ] || fail "no gnuplot: $(cat "$w/out")"
say "case 4c" "$w"
ok

# 5. clang from elsewhere without its fuzzer runtime: the runtime of that clang's version
w=$tmp/w5
world "$w"
rm "$w/clang-rt/lib/linux/libclang_rt.fuzzer-x86_64.a"
sed -i 's/echo 14.0.6/echo 16.0.1/' "$w/bin/clang"
deps "$w" DEPS_DRY_RUN=1 || fail "dry run 5: $(cat "$w/out")"
[ "$(would "$w")" = libclang-rt-16-dev ] || fail "clang runtime: $(cat "$w/out")"
say "case 5" "$w"
ok

# 6. apt-get refuses: the script stops with its own message, naming the packages and the command
w=$tmp/w6
world "$w"
echo cmocka.h >"$w/no-headers"
deps "$w" && fail "apt failure not reported: $(cat "$w/out")"
grep -q "install -y -qq --no-install-recommends libcmocka-dev" "$w/apt.log" || fail "apt args: $(cat "$w/apt.log")"
grep -q "^deps: apt-get could not install: libcmocka-dev$" "$w/out" || fail "apt message: $(cat "$w/out")"
sed 's/^/  case 6: /' "$w/out"
grep -q "apt-get install -y --no-install-recommends libcmocka-dev" "$w/out" || fail "no command to run: $(cat "$w/out")"
[ -e "$w/build" ] && fail "wrote build/ after failing"
ok

# 7. not root and no sudo: a message naming what to install, apt not called
w=$tmp/w7
world "$w"
echo cmocka.h >"$w/no-headers"
deps "$w" STUB_UID=1000 && fail "non-root without sudo went on: $(cat "$w/out")"
grep -q "^deps: need root to install: libcmocka-dev" "$w/out" || fail "root message: $(cat "$w/out")"
sed 's/^/  case 7: /' "$w/out"
grep -q "apt-get install -y libcmocka-dev" "$w/out" || fail "root message command: $(cat "$w/out")"
[ -e "$w/apt.log" ] && fail "apt-get called without root"
ok

# 8. make stops at deps' message, not at "No rule to make target"
w=$tmp/w8
world "$w"
echo cmocka.h >"$w/no-headers"
mkdir -p "$w/tree/scripts"
cp "$root/Makefile" "$w/tree/"
cp "$root/scripts/deps.sh" "$root/scripts/llama.sh" "$w/tree/scripts/"
mk=$(command -v make) || fail "no make"
rm "$w/bin/make"
ln -s "$mk" "$w/bin/make"
(cd "$w/tree" && env -i PATH="$w/bin" HOME="$w" DYNREC_CACHE="$w/cache" DEPS_CA_BUNDLE="$w/ca-certificates.crt" make test >"$w/out" 2>&1) &&
    fail "make went on after deps failed: $(cat "$w/out")"
grep -q "^deps: apt-get could not install: libcmocka-dev" "$w/out" || fail "make output: $(cat "$w/out")"
grep -q "No rule to make target" "$w/out" && fail "make's confusing error: $(cat "$w/out")"
tail -n 2 "$w/out" | sed 's/^/  case 8: /'
(cd "$w/tree" && env -i PATH="$w/bin" HOME="$w" make help >/dev/null 2>&1) || fail "make help ran deps"
[ -e "$w/tree/build" ] && fail "make help wrote build/"
ok

# 9. the dashboard's browser test: no chromium binary and no node: both named
w=$tmp/w9
world "$w"
rm "$w/bin/chromium" "$w/bin/node"
deps "$w" DEPS_DRY_RUN=1 || fail "dry run 9: $(cat "$w/out")"
[ "$(would "$w")" = "nodejs chromium" ] || fail "no chromium: $(cat "$w/out")"
say "case 9" "$w"
ok

echo "deps.sh: $n checks passed"
