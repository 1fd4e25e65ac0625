#!/bin/sh
# Build the native peak finder as `wsk action create --native` takes it: a static executable
# named `exec` in a zip (OUT_DIR/peakfinder.zip, and OUT_DIR/exec to run directly).
#
#   examples/crystallography/native/build.sh [OUT_DIR]    (default: native/build)
#
# Needs Debian's gcc, libhdf5-dev and zip (apt-get install gcc libhdf5-dev zip). libhdf5 and
# its filters are linked statically, so the action runs on any Linux image, our runtime
# image included, with no library installed there. Reproducible: the same sources, compiler
# and libraries give the same bytes (no build paths, ids or dates in the output).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/build}
# Debian's serial HDF5 (libhdf5-dev); HDF5_DIR names another one with lib/ and include/.
hdf5=${HDF5_DIR:-/usr/lib/$(gcc -dumpmachine)/hdf5/serial}
mkdir -p "$out"
# -static with libhdf5: the linker warns that HDF5's plugin loader would need dlopen at run
# time; plugins (compression filters beyond zlib and szip) are not used.
gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -static \
    -ffile-prefix-map="$here"=. -Wl,--build-id=none \
    -I"$hdf5/include" "$here/peakfinder.c" -o "$out/exec" \
    "$hdf5/lib/libhdf5.a" -lsz -laec -lz -lm -ldl -lpthread 2>"$out/link.log" \
    || { cat "$out/link.log" >&2; exit 1; }
grep -v -e dlopen -e H5PL__open "$out/link.log" >&2 || true
rm -f "$out/link.log"
strip "$out/exec"
touch -d '1980-01-01 00:00:00 UTC' "$out/exec"
rm -f "$out/peakfinder.zip"
(cd "$out" && TZ=UTC zip -q -X -9 peakfinder.zip exec)
echo "$out/peakfinder.zip"
