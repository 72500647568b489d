#!/usr/bin/env bash
# Installs libtorch (PyPI's torch==2.13.0, the version tch 0.26 expects) and gymnasium[box2d] into
# the project-local .venv, and builds td3-sweep against it. Idempotent: when everything is in place
# it returns in about a second (a stamp file records the finished install; cargo skips an up-to-date build).
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
PY=${PYTHON:-python3}
STAMP=.venv/.td3-sweep-setup-$TORCH_VERSION

# Free space, in GiB, on the filesystem holding $1 (which must exist).
free_gib() { df -Pk "$1" | awk 'NR==2 { printf "%d", $4 / 1048576 }'; }

# The install needs about 5 GiB in .venv plus room for pip to unpack the largest wheel (in $TMPDIR);
# the release build about 3 GiB more in target/. A full disk otherwise shows up as pip's bare
# "[Errno 28] No space left on device" part-way through, so say it first, with what to do.
need_space() {
  local where=$1 need=$2 what=$3 have
  have=$(free_gib "$where")
  if [ "$have" -lt "$need" ]; then
    echo "setup: error: $what needs about $need GiB free on the filesystem of $where; it has $have GiB." >&2
    echo "setup: hint: free some space (old clones, cargo target/ folders, ~/.cache/pip), or point TMPDIR at a larger disk." >&2
    exit 1
  fi
}

if [ ! -f "$STAMP" ] || [ ! -x .venv/bin/python ]; then
  echo "setup: installing torch==$TORCH_VERSION into .venv (about 4.7 GB, a few minutes the first time)" >&2
  need_space . 6 "installing torch into .venv"
  need_space "${TMPDIR:-/tmp}" 2 "unpacking torch's wheels (pip's temporary folder)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  # --no-cache-dir: the wheels are installed once per checkout; caching them would take another ~3 GB.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir "torch==$TORCH_VERSION"
  .venv/bin/python - <<PYEOF
import torch
assert torch.__version__.startswith("$TORCH_VERSION"), torch.__version__
print("setup: torch", torch.__version__, "cuda available:", torch.cuda.is_available())
PYEOF
  touch "$STAMP"
fi

# Gymnasium for the bridge (`env.kind: gymnasium`, python/gym_bridge.py) and the Pendulum-v1
# conformance test. box2d (CarRacing) ships manylinux wheels for CPython 3.8-3.12; where pip has to
# build it from source it needs SWIG, which PyPI's `swig` package provides: installed only then.
GYM_SPEC="gymnasium[box2d]==1.4.0"
GYM_STAMP=.venv/.td3-sweep-setup-gymnasium-1.4.0
if [ ! -f "$GYM_STAMP" ]; then
  echo "setup: installing $GYM_SPEC into .venv" >&2
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir "$GYM_SPEC"; then
    echo "setup: retrying with SWIG from PyPI (box2d built from source)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir swig
    PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir "$GYM_SPEC"
  fi
  .venv/bin/python -c 'import gymnasium, Box2D; gymnasium.make("CarRacing-v3").reset(seed=0); print("setup: gymnasium", gymnasium.__version__, "with box2d")'
  touch "$GYM_STAMP"
fi

# For external trainers (issue: bring your own trainer): Stable-Baselines3 for examples/sb3 and the
# td3sweep package's SB3 subclass, TensorBoard's own reader for the event-file test, pytest for
# python/tests. Then the td3sweep package itself (python/), reinstalled when its files change.
TOOLS_SPEC="stable-baselines3==2.9.2 tensorboard==2.21.0 pytest==9.2.0"
TOOLS_STAMP=.venv/.td3-sweep-setup-tools-$(echo "$TOOLS_SPEC" | sha256sum | cut -c1-12)
if [ ! -f "$TOOLS_STAMP" ]; then
  echo "setup: installing $TOOLS_SPEC into .venv" >&2
  # shellcheck disable=SC2086 # the spec is a list of requirements
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir $TOOLS_SPEC
  touch "$TOOLS_STAMP"
fi
if [ -d python/td3sweep ]; then
  PKG_HASH=$(find python -path '*/__pycache__' -prune -o -type f \( -name '*.py' -o -name '*.toml' \) -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
  PKG_STAMP=.venv/.td3-sweep-setup-td3sweep-$PKG_HASH
  if [ ! -f "$PKG_STAMP" ]; then
    echo "setup: installing the td3sweep package (python/) into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-deps ./python
    rm -f .venv/.td3-sweep-setup-td3sweep-*
    touch "$PKG_STAMP"
  fi
fi

export LIBTORCH_USE_PYTORCH=1
export PATH="$PWD/.venv/bin:$PATH"
if [ "${SETUP_SKIP_BUILD:-0}" != 1 ]; then
  if [ ! -x target/release/td3-sweep ]; then
    echo "setup: building td3-sweep (release; a few minutes the first time)" >&2
    need_space . 3 "the first release build (target/)"
    cargo build --release
  else
    cargo build --release --quiet
  fi
fi
