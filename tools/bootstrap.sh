#!/bin/sh
# bootstrap.sh: sets up a fresh Debian/Ubuntu machine, builds dsdeblur and runs
# either the demo (default) or the whole test suite.
#   sh tools/bootstrap.sh          install packages, build, list devices, deblur a sample
#   sh tools/bootstrap.sh test     install packages, build, run `make check`
# Set DSDEBLUR_SKIP_APT=1 to skip the package installation.
set -eu
mode=${1:-demo}
cd "$(dirname "$0")/.."

packages="pocl-opencl-icd ocl-icd-opencl-dev opencl-headers libclblast-dev libclfft-dev \
libstb-dev libyaml-dev check autoconf automake libtool pkg-config make gcc oclgrind clinfo"
# MPI, for the data-parallel dsdeblur-train (./configure --with-mpi; doc/distributed.md)
packages="$packages libopenmpi-dev openmpi-bin"
# PNG and JPEG decoding (doc/images.md); clang and its libFuzzer runtime for make fuzz
packages="$packages libpng-dev libjpeg-dev clang libclang-rt-dev"

if [ "${DSDEBLUR_SKIP_APT:-0}" != 1 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update
    # shellcheck disable=SC2086
    $sudo apt-get install -y --no-install-recommends $packages
fi

if [ ! -f Makefile ]; then
    autoreconf -fi
    ./configure
fi
jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs"

case "$mode" in
demo)
    ./tools/dsdeblur-run --list-devices
    mkdir -p out
    ./tools/dsdeblur-run -m data/dsdeblur-default.safetensors --compare --force --time \
        data/samples/dogs-blurred.png -o out/
    echo "deblurred: out/dogs-blurred.png; side by side (blurred | deblurred): out/dogs-blurred-compare.png"
    ;;
test)
    status=0
    make -j"$jobs" check || status=$?
    # Check's summary lines, one per test program
    for f in tests/test-*.log; do
        echo "== $f"
        grep -E '^[0-9]+%: Checks: |^SKIP|FAIL|error' "$f" || cat "$f"
    done
    cat test-suite.log 2>/dev/null | sed -n '1,12p'
    exit $status
    ;;
*)
    echo "usage: sh tools/bootstrap.sh [demo|test]" >&2
    exit 2
    ;;
esac
