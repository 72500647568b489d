#!/usr/bin/env bash
# Builds td3-sweep and td3-bench for the GPU machine that the `run` device tool sometimes lends.
#
# Why: that machine's image has PyTorch 2.11.0 (+cu130, Python 3.12, torch's libs in
# /opt/torch/.venv/lib/python3.12/site-packages/torch/lib), no Rust toolchain and no network, and
# at most 64 MiB can be carried to it. Our normal build (target/release) links the libtorch 2.13 of
# the 4.7 GB .venv (tch 0.26), which can't travel. So this script builds the same source against
# PyPI's torch==$TORCH_VERSION with the tch/torch-sys release made for it, with an extra rpath to
# the device's torch/lib, and copies the two binaries (about 10 MB) into one small folder.
#
# What it does (idempotent: a second run takes seconds):
#   1. a venv with PyPI torch==$TORCH_VERSION (about 4.7 GB, reused when present);
#   2. a copy of the work tree (tracked and untracked-but-not-ignored files, so uncommitted changes
#      are included) with only Cargo.toml's tch/torch-sys versions changed;
#   3. `cargo build --release --bins` in a separate target dir, rpath = the device's torch/lib first,
#      then the build venv's (which is how it still runs here);
#   4. copies td3-sweep and td3-bench (and BUILD-INFO.txt) into the output folder.
#
# Usage: scripts/build-for-device.sh [OUT_DIR]        (default OUT_DIR: <repo>/.device-bin)
# Env:   TORCH_VERSION      torch of the device image            (default 2.11.0)
#        DEVICE_TORCH_LIB   its torch/lib folder                 (default the /opt path above)
#        TCH_VERSION        tch/torch-sys release to build with  (default: from TORCH_VERSION)
#        DEVICE_VENV        where the build venv lives           (default /tmp/torch211/.venv for 2.11)
#        DEVICE_BUILD_DIR   source copy and cargo target dir     (default /tmp/td3-device-build)
#        PYTHON             interpreter that creates the venv    (default python3)
#
# Then, with the `run` device tool (the repo's root is its working directory; `.device-bin` is
# ignored through .gitignore, so it must be carried):
#   run(command=".device-bin/td3-sweep devices", carry=[".device-bin"])
# docs/gpu.md lists the GPU checks to run there.
#
# Caveat: none of this has run on a GPU machine yet. It was checked on a CPU-only machine (the
# binary runs against the build venv's libtorch 2.11 and trains); that the /opt path exists there
# and that CUDA comes up through it is still to be seen: run `devices` (and `ldd`) first.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

OUT_DIR=${1:-$ROOT/.device-bin}
TORCH_VERSION=${TORCH_VERSION:-2.11.0}
DEVICE_TORCH_LIB=${DEVICE_TORCH_LIB:-/opt/torch/.venv/lib/python3.12/site-packages/torch/lib}
MINOR=${TORCH_VERSION%.*}
VENV=${DEVICE_VENV:-/tmp/torch${MINOR//./}/.venv}
WORK=${DEVICE_BUILD_DIR:-/tmp/td3-device-build}
PY=${PYTHON:-python3}

# torch-sys's build.rs pins one libtorch version per release (`const TORCH_VERSION`).
if [ -z "${TCH_VERSION:-}" ]; then
  case "$TORCH_VERSION" in
    2.10.*) TCH_VERSION=0.23 ;;
    2.11.*) TCH_VERSION=0.24 ;;
    2.13.*) TCH_VERSION=0.26 ;;
    *) echo "build-for-device: no known tch release for torch $TORCH_VERSION; set TCH_VERSION" >&2; exit 2 ;;
  esac
fi
log() { echo "build-for-device: $*" >&2; }

# 1. The build venv.
STAMP=$VENV/.td3-device-torch-$TORCH_VERSION
if [ ! -f "$STAMP" ] || [ ! -x "$VENV/bin/python" ]; then
  log "installing torch==$TORCH_VERSION into $VENV (about 4.7 GB, a few minutes the first time)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir "torch==$TORCH_VERSION"
  "$VENV/bin/python" -W ignore -c "import torch; assert torch.__version__.startswith('$TORCH_VERSION'), torch.__version__; print('build-for-device: torch', torch.__version__)"
  touch "$STAMP"
fi

# 2. The source copy. tar keeps the files' mtimes, so cargo rebuilds only what changed.
SRC=$WORK/src
rm -rf "$SRC"
mkdir -p "$SRC"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
  | tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$SRC"
sed -i -E \
  -e "s/^tch = \"[^\"]*\"/tch = \"$TCH_VERSION\"/" \
  -e "s/^torch-sys = \"[^\"]*\"/torch-sys = \"$TCH_VERSION\"/" \
  "$SRC/Cargo.toml"
grep -q "^tch = \"$TCH_VERSION\"" "$SRC/Cargo.toml" && grep -q "^torch-sys = \"$TCH_VERSION\"" "$SRC/Cargo.toml" \
  || { log "could not set tch/torch-sys to $TCH_VERSION in Cargo.toml"; exit 1; }
# Keep the edited manifest's mtime, and the lock file cargo rewrote last time, so a rerun is a no-op.
touch -r "$ROOT/Cargo.toml" "$SRC/Cargo.toml"
[ -f "$WORK/Cargo.lock" ] && cp -p "$WORK/Cargo.lock" "$SRC/Cargo.lock"

# 3. The build.
unset LIBTORCH LIBTORCH_INCLUDE LIBTORCH_LIB LIBTORCH_STATIC LIBTORCH_BYPASS_VERSION_CHECK
export LIBTORCH_USE_PYTORCH=1
export VIRTUAL_ENV=$VENV
export PATH="$VENV/bin:$HOME/.local/bin:$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR=$WORK/target
export RUSTFLAGS="-C link-arg=-Wl,-rpath,$DEVICE_TORCH_LIB"
log "building with tch $TCH_VERSION against torch $TORCH_VERSION (release; about 6 minutes the first time)"
(cd "$SRC" && cargo build --release --bins)
cp -p "$SRC/Cargo.lock" "$WORK/Cargo.lock"

BIN=$CARGO_TARGET_DIR/release
RPATH=$(readelf -d "$BIN/td3-sweep" | sed -n 's/.*R[UN]*PATH.*\[\(.*\)\]/\1/p')
[[ ":$RPATH:" == *":$DEVICE_TORCH_LIB:"* ]] || { log "td3-sweep's rpath ($RPATH) lacks $DEVICE_TORCH_LIB"; exit 1; }

# 4. The output folder.
mkdir -p "$OUT_DIR"
cp -p "$BIN/td3-sweep" "$BIN/td3-bench" "$OUT_DIR/"
{
  echo "built:        $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
  echo "source:       $(git -C "$ROOT" rev-parse --short=12 HEAD)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
  echo "torch:        $TORCH_VERSION (tch/torch-sys $(grep -A1 '^name = "tch"' "$SRC/Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p'))"
  echo "rpath:        $RPATH"
} > "$OUT_DIR/BUILD-INFO.txt"
DEVICES=$("$OUT_DIR/td3-sweep" devices)
log "here it runs against the build venv: ${DEVICES%%$'\n'*}"
ls -l "$OUT_DIR"/td3-sweep "$OUT_DIR"/td3-bench | awk '{printf "build-for-device: %-40s %5.1f MB\n", $NF, $5/1e6}' >&2
log "total $(du -sh "$OUT_DIR" | cut -f1) (the device tool carries 64 MiB at most); carry \"${OUT_DIR#"$ROOT"/}\""
