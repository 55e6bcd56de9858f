#!/usr/bin/env bash
# Build and install mmcv 2.1.0 with ops from its source release against the
# torch already installed in the venv of PYTHON ($1). mmcv 2.1's setup.py asks
# for -std=c++17, but the headers of torch >= 2.14 need C++20, so the flag is
# raised in the unpacked source before building (the only change). About 22
# minutes on 2 cores; the Makefile runs this only when no prebuilt wheel is in
# $(WHEELS).
set -euo pipefail
PYTHON=${1:?usage: build_mmcv.sh PYTHON}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(mktemp -d)
trap 'rm -rf "$SRC"' EXIT
"$PYTHON" -m pip download --no-deps --no-binary :all: --no-build-isolation \
    -c "$HERE/constraints.txt" -d "$SRC" mmcv==2.1.0
tar -xzf "$SRC"/mmcv-2.1.0.tar.gz -C "$SRC"
sed -i -e "s/-std=c++14/-std=c++20/g" -e "s/-std=c++17/-std=c++20/g" \
    "$SRC/mmcv-2.1.0/setup.py"
MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "$PYTHON" -m pip install \
    -c "$HERE/constraints.txt" --no-build-isolation "$SRC/mmcv-2.1.0"
