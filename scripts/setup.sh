#!/usr/bin/env bash
# Installs libtorch (PyPI's torch==2.13.0, the version tch 0.26 expects) into the project-local
# .venv, and builds td3-sweep against it. Idempotent: when everything is in place it returns in
# about a second (a stamp file records the finished install; cargo skips an up-to-date build).
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
PY=${PYTHON:-python3}
STAMP=.venv/.td3-sweep-setup-$TORCH_VERSION

if [ ! -f "$STAMP" ] || [ ! -x .venv/bin/python ]; then
  echo "setup: installing torch==$TORCH_VERSION into .venv (about 4.7 GB, a few minutes the first time)" >&2
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
  .venv/bin/python - <<PYEOF
import torch
assert torch.__version__.startswith("$TORCH_VERSION"), torch.__version__
print("setup: torch", torch.__version__, "cuda available:", torch.cuda.is_available())
PYEOF
  touch "$STAMP"
fi

export LIBTORCH_USE_PYTORCH=1
export PATH="$PWD/.venv/bin:$PATH"
if [ "${SETUP_SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --quiet
fi
