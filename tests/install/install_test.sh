#!/bin/sh
# tests/install/install_test.sh - install the build tree into a temporary
# prefix and use it from outside the source tree, as a user would:
#   1. cc app.c $(pkg-config --cflags --libs weft), shared and static;
#   2. a CMake project with find_package(weft) and weft::weft(_static);
#   3. libweft.so exports exactly the weft_ API of weft.h.
# Usage: install_test.sh CMAKE BUILD_DIR THIS_DIR CC [SANITIZER]
# Exits 77 (skipped) in sanitizer builds: their objects need the sanitizer
# runtime, which a plain user program does not link.
set -u

cmake=$1
build=$2
here=$3
cc=$4
sanitize=${5:-}

if [ -n "$sanitize" ]; then
    echo "skipped: sanitizer build ($sanitize)"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
prefix=$tmp/prefix
failures=0

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

step "cmake --install $build --prefix <tmp>/prefix"
if ! "$cmake" --install "$build" --prefix "$prefix"; then
    echo "FAIL: cmake --install"
    exit 1
fi

pc=$(find "$prefix" -name weft.pc | head -n 1)
if [ -z "$pc" ]; then
    echo "FAIL: no weft.pc under the prefix"
    exit 1
fi
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
[ -f "$prefix/include/weft.h" ] || fail "include/weft.h not installed"
[ -f "$libdir/libweft.a" ] || fail "libweft.a not installed in $libdir"
[ -e "$libdir/libweft.so" ] || fail "libweft.so not installed in $libdir"
find "$prefix" -name weftConfig.cmake | grep -q . ||
    fail "weftConfig.cmake not installed"

cp "$here/app.c" "$tmp/app.c"
mkdir "$tmp/consumer"
cp "$here/consumer/CMakeLists.txt" "$here/app.c" "$tmp/consumer/"
cd "$tmp" || exit 1

export PKG_CONFIG_PATH="$pcdir"
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

step "pkg-config --cflags --libs weft"
flags=$(pkg-config --cflags --libs weft) || fail "pkg-config --cflags --libs weft"
echo "$flags"
case "$flags" in
*"$prefix"*) ;;
*) fail "weft.pc does not point into the install prefix (is it relocatable?)" ;;
esac

step "cc app.c \$(pkg-config --cflags --libs weft)"
# shellcheck disable=SC2086 # word splitting of the flags is intended
if "$cc" -std=c17 -Wall -Wextra -Werror app.c $flags -o app_shared; then
    ./app_shared || fail "app built with pkg-config (shared) failed"
    ldd ./app_shared | grep -q "$libdir/libweft.so" ||
        fail "app_shared does not load libweft.so from the prefix"
else
    fail "compiling app.c with pkg-config flags"
fi

step "cc app.c \$(pkg-config --static ...) with libweft.a"
sflags=$(pkg-config --cflags --libs --static weft | sed "s#-lweft\\b#$libdir/libweft.a#")
echo "$sflags"
# shellcheck disable=SC2086
if "$cc" -std=c17 -Wall -Wextra -Werror app.c $sflags -o app_static; then
    ./app_static || fail "app linked with libweft.a failed"
    if ldd ./app_static | grep -q libweft; then
        fail "app_static still loads libweft.so"
    fi
else
    fail "linking app.c with libweft.a"
fi

step "find_package(weft) + weft::weft, weft::weft_static"
if "$cmake" -S consumer -B consumer-build -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release >cmake.log 2>&1 &&
    "$cmake" --build consumer-build >>cmake.log 2>&1; then
    ./consumer-build/app || fail "CMake consumer (weft::weft) failed"
    ./consumer-build/app_static || fail "CMake consumer (weft::weft_static) failed"
else
    cat cmake.log
    fail "configuring or building the CMake consumer"
fi

step "libweft.so exports exactly the weft.h API"
if command -v nm >/dev/null 2>&1; then
    nm -D --defined-only "$libdir/libweft.so" | awk '{print $NF}' | sort -u >exported
    extra=$(grep -v -E '^(weft_|_init$|_fini$|_edata$|_end$|__bss_start$)' exported)
    [ -z "$extra" ] || fail "libweft.so exports non-weft symbols: $(echo $extra)"
    grep -o -E 'WEFT_EXPORT[^;]*[ *]weft_[a-z_]+\(' "$prefix/include/weft.h" |
        sed -E 's/.*[ *](weft_[a-z_]+)\($/\1/' | sort -u >declared
    missing=$(comm -23 declared exported)
    [ -z "$missing" ] || fail "declared in weft.h but not exported: $(echo $missing)"
    echo "$(wc -l <declared) functions declared, all exported"
fi

if [ "$failures" -ne 0 ]; then
    printf '\n%d install check(s) failed\n' "$failures"
    exit 1
fi
printf '\nall install checks passed\n'
exit 0
