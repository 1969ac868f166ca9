#!/bin/sh
# llama.sh - builds llama.cpp once (static libraries for the CPU, plus llama-server) from the
# source bundle that npm's node-llama-cpp@3.21.1 ships (llama/gitRelease.bundle), into a cache
# outside the work tree. Prints the install prefix on its last line of stdout.
#
#   LLAMA_DIR=/prefix      use an existing install (include/llama.h, lib/libllama.a) instead
#   DYNREC_CACHE=/dir      where the build goes (default: ${XDG_CACHE_HOME:-$HOME/.cache}/dynrec)
#
# The prefix is complete when it holds the stamp file `.dynrec-ok`; an interrupted build is
# started again from scratch. Nothing is downloaded except the npm package itself.
set -eu

NLC_VERSION=3.21.1
if [ -n "${LLAMA_DIR:-}" ]; then
    if [ -f "$LLAMA_DIR/include/llama.h" ]; then echo "$LLAMA_DIR"; exit 0; fi
    echo "llama: LLAMA_DIR=$LLAMA_DIR has no include/llama.h" >&2
    exit 1
fi

CACHE="${DYNREC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dynrec}"
PREFIX="$CACHE/llama.cpp-nlc$NLC_VERSION"
if [ -f "$PREFIX/.dynrec-ok" ]; then echo "$PREFIX"; exit 0; fi

for t in npm git cmake c++; do
    command -v "$t" >/dev/null 2>&1 || { echo "llama: '$t' is needed to build llama.cpp" >&2; exit 1; }
done

WORK="$CACHE/llama-build.$$"
rm -rf "$PREFIX" "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT INT TERM
echo "llama: fetching node-llama-cpp@$NLC_VERSION from npm" >&2
(cd "$WORK" && npm pack --loglevel=error "node-llama-cpp@$NLC_VERSION" >/dev/null) || {
    echo "llama: 'npm pack node-llama-cpp@$NLC_VERSION' failed (npm's message is above): npm must" >&2
    echo "llama: reach its registry (proxy or certificate settings: npm config get registry)," >&2
    echo "llama: or point LLAMA_DIR at an installed llama.cpp" >&2
    exit 1
}
tar -xzf "$WORK/node-llama-cpp-$NLC_VERSION.tgz" -C "$WORK" package/llama/gitRelease.bundle
git clone -q "$WORK/package/llama/gitRelease.bundle" "$WORK/src" 2>/dev/null
JOBS=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
echo "llama: building llama.cpp (static, CPU, $JOBS jobs; several minutes, once)" >&2
cmake -S "$WORK/src" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DGGML_OPENMP=OFF -DGGML_NATIVE=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
    -DCMAKE_INSTALL_PREFIX="$PREFIX" >"$WORK/cmake.log" 2>&1 ||
    { tail -30 "$WORK/cmake.log" >&2; exit 1; }
cmake --build "$WORK/build" -j "$JOBS" --target llama llama-server >"$WORK/build.log" 2>&1 ||
    { tail -40 "$WORK/build.log" >&2; exit 1; }
mkdir -p "$PREFIX/lib" "$PREFIX/include" "$PREFIX/bin" "$PREFIX/models"
find "$WORK/build" -name '*.a' -exec cp {} "$PREFIX/lib/" \;
cp "$WORK/src/include/"*.h "$WORK/src/ggml/include/"*.h "$PREFIX/include/"
cp "$WORK/build/bin/llama-server" "$PREFIX/bin/"
cp "$WORK/src/models/"ggml-vocab-*.gguf "$PREFIX/models/" 2>/dev/null || true
touch "$PREFIX/.dynrec-ok"
echo "llama: installed in $PREFIX" >&2
echo "$PREFIX"
