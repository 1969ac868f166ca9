#!/bin/sh
# cycles.sh [BUILD] - the dependency cycles between the library's files. A module is src/NAME.c
# with src/NAME.h and src/NAME_int.h; any other header is a module by itself; A depends on B when
#   - one of A's files includes one of B's headers (the compiler's -MM output, direct includes),
#   - or A's object calls or reads a symbol that B's object alone defines (nm).
# Prints each edge set's cycles as tsort finds them and exits 1 when there is any; prints
# "cycles: none" and exits 0 otherwise. Needs the objects of BUILD (default build/release).
set -u
BUILD=${1:-build/release}
cd "$(dirname "$0")/.."
CC=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

[ -d "$BUILD/obj" ] || { echo "cycles: no objects in $BUILD/obj (run make first)" >&2; exit 2; }

# the module a file belongs to: the .c file that shares its name, and NAME_int.h (its private
# layout) belongs to NAME.c; any other header with no .c of its own (an interface several
# files implement, a subsystem's shared layout) is a node of its own
module_of() {
    b=$(basename "$1")
    b=${b%.*}
    case $b in *_int) [ -f "src/${b%_int}.c" ] && b=${b%_int} ;; esac
    echo "$b"
}

# include edges: each file's direct quoted includes, resolved by the compiler (-MM on a file
# that includes only that one header would list its own includes too, so take the first hop)
for f in src/*.c src/*.h; do
    a=$(module_of "$f")
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" | while read -r h; do
        dep=$(printf '#include "%s"\n' "$h" | $CC -MM -Iinclude -Isrc -x c - 2>/dev/null |
              tr ' \\' '\n\n' | grep -E "(^|/)$h\$" | head -n 1)
        [ -n "$dep" ] || continue
        case $dep in src/*) b=$(module_of "$dep") ;; *) continue ;; esac
        [ "$a" != "$b" ] && echo "$a $b"
    done
done | sort -u >"$tmp/inc"

# symbol edges: which object defines each global symbol, which objects use it
objs=""
for c in src/*.c; do # the objects of today's sources (a renamed file leaves a stale one behind)
    o="$BUILD/obj/$(basename "$c" .c).o"
    [ -f "$o" ] || { echo "cycles: $o is missing (run make first)" >&2; exit 2; }
    objs="$objs $o"
done
for o in $objs; do
    m=$(basename "$o" .o)
    nm -g --defined-only "$o" | awk -v m="$m" 'NF == 3 { print $3, m }'
done | sort >"$tmp/defs"
for o in $objs; do
    m=$(basename "$o" .o)
    nm -u "$o" | awk -v m="$m" '{ print $NF, m }'
done | sort >"$tmp/uses"
join "$tmp/uses" "$tmp/defs" | awk '$2 != $3 { print $2, $3 }' | sort -u >"$tmp/sym"

status=0
for kind in inc sym all; do
    case $kind in
    inc) label="includes" ;;
    sym) label="calls" ;;
    all) label="includes and calls together"; cat "$tmp/inc" "$tmp/sym" | sort -u >"$tmp/all" ;;
    esac
    n=$(wc -l <"$tmp/$kind")
    tsort "$tmp/$kind" >/dev/null 2>"$tmp/$kind.err"
    if grep -q loop "$tmp/$kind.err"; then
        status=1
        echo "cycles ($label, $n edges):"
        sed -e 's/^tsort: -: input contains a loop:/  loop:/' -e "s|^tsort: $tmp/$kind: input contains a loop:|  loop:|" \
            -e 's/^tsort: /    /' "$tmp/$kind.err"
    else
        echo "cycles ($label, $n edges): none"
    fi
done
[ "$status" = 0 ] && echo "cycles: none"
exit $status
