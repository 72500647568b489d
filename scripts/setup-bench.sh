#!/usr/bin/env bash
# Extra Python packages that only `just bench` needs (Stable-Baselines3 for the comparison),
# installed into the project .venv next to torch. Kept out of scripts/setup.sh so `just test`
# does not pay for them. Idempotent: a stamp file makes the second run instant.
set -euo pipefail
cd "$(dirname "$0")/.."

SB3_VERSION=${SB3_VERSION:-2.9.2}
STAMP=.venv/.td3-sweep-bench-sb3-$SB3_VERSION

scripts/setup.sh
if [ ! -f "$STAMP" ]; then
  echo "setup-bench: installing stable-baselines3==$SB3_VERSION into .venv" >&2
  # Pin torch to the installed version so pip never swaps libtorch under tch.
  TORCH=$(.venv/bin/python -c 'import torch; print(torch.__version__.split("+")[0])')
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir \
    "stable-baselines3==$SB3_VERSION" "torch==$TORCH"
  .venv/bin/python -c 'import stable_baselines3 as s; print("setup-bench: stable-baselines3", s.__version__)'
  touch "$STAMP"
fi
