#!/usr/bin/env bash
# Set up the benchmark's peers, each in its own directory under $BENCH_DIR (default
# ~/.cache/proxy-bench), outside the package's development venv. Idempotent: a peer whose
# stamp file exists is left alone.
# Usage: setup.sh [PEER...]   (default: all; peers: wsfy-numpy wsfy-plain ours ours-numpy socat)
# BENCH_OURS_PYTHON set: "ours" runs from that interpreter and is not installed here.
#   wsfy-numpy/   websockify==0.13.0 + numpy (its declared dependencies)
#   wsfy-plain/   websockify==0.13.0 --no-deps (no numpy: the minimal-host case)
#   ours/         this checkout, installed non-editable from the source tree
#   ours-numpy/   this checkout with the [speedups] extra (numpy unmasking)
#   tools/        matplotlib for the chart
#   node/         npm ws + bufferutil (the load generator's masking in C)
#   socat         from Debian (apt-get) when missing
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/proxy-bench}
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$BENCH_DIR"
peers=" ${*:-wsfy-numpy wsfy-plain ours ours-numpy socat} "
want() { [[ $peers == *" $1 "* ]]; }

venv() {  # venv NAME PIP_ARGS...
    local dir=$BENCH_DIR/$1; shift
    if [[ -f $dir/.stamp && ${BENCH_REINSTALL:-} != "$(basename "$dir")" ]]; then return; fi
    echo "bench setup: $dir" >&2
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/pip" install -q "$@"
    touch "$dir/.stamp"
}

want wsfy-numpy && venv wsfy-numpy websockify==0.13.0 numpy
want wsfy-plain && venv wsfy-plain --no-deps websockify==0.13.0
[[ -n ${BENCH_CHART:-} ]] && venv tools matplotlib
# Ours is reinstalled on every run: the tree changes.
if [[ -z ${BENCH_OURS_PYTHON:-} ]]; then
    rm -f "$BENCH_DIR/ours/.stamp" "$BENCH_DIR/ours-numpy/.stamp"
    want ours && venv ours "$root"
    if want ours-numpy && grep -q '^speedups *=' "$root/setup.cfg"; then
        venv ours-numpy "$root[speedups]"
    fi
fi
if [[ -z ${BENCH_NODE:-} && ! -f $BENCH_DIR/node/.stamp ]]; then
    mkdir -p "$BENCH_DIR/node"
    (cd "$BENCH_DIR/node" && printf '{"private":true,"type":"module"}\n' > package.json &&
        npm install --silent --no-audit --no-fund ws@8 bufferutil@4 >&2)
    touch "$BENCH_DIR/node/.stamp"
fi
if want socat && ! command -v socat >/dev/null; then
    if [[ $(id -u) == 0 ]]; then
        apt-get install -y -q socat >&2 || { apt-get update -q >&2 && apt-get install -y -q socat >&2; }
    else
        echo "bench setup: socat missing (apt-get install socat); the socat peer is skipped" >&2
    fi
fi
