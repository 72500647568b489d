# td3-sweep developer commands. `just --list` shows them all.

# tch finds libtorch through the project's .venv (PyPI torch==2.13.0); see scripts/setup.sh.
export LIBTORCH_USE_PYTORCH := "1"
export PATH := justfile_directory() + "/.venv/bin:" + env_var('PATH')

bin := justfile_directory() + "/target/release/td3-sweep"

# List the recipes.
default:
    @just --list

# Install torch==2.13.0 and gymnasium[box2d] into .venv, build the release binary (idempotent, seconds when done).
setup:
    @scripts/setup.sh

# A verdict (exit 10 INVESTIGATE/FLAKY, 11 FAIL, 12 not finished; every code is in src/results/exit.rs) is a result, not a failed recipe: it is printed
# and the recipe succeeds. Bad input (2) or errors (1) fail it. `td3-sweep sweep` returns them all.

# Run a sweep end to end: train every run, classify, write the VALIDATION report.
sweep FILE *ARGS: setup
    #!/usr/bin/env bash
    set -u
    "{{bin}}" sweep {{FILE}} {{ARGS}}
    code=$?
    case $code in
      0|10|11|12) echo "verdict exit code $code (0 all PASS, 10 INVESTIGATE or FLAKY, 11 FAIL, 12 not finished)";;
      *) exit $code;;
    esac

# Put `td3-sweep` on your PATH (PREFIX/bin, default ~/.local/bin) to sweep your own trainer from your own repo.
# The binary finds libtorch in this checkout's .venv (an rpath), so keep the checkout where it is.
install PREFIX="~/.local": setup
    #!/usr/bin/env bash
    set -euo pipefail
    prefix="{{PREFIX}}"
    prefix="${prefix/#\~/$HOME}"
    install -D -m 755 "{{bin}}" "$prefix/bin/td3-sweep"
    # Checked from outside the checkout, with nothing of ours on the PATH or in LD_LIBRARY_PATH.
    (cd / && env -u LD_LIBRARY_PATH PATH=/usr/bin:/bin "$prefix/bin/td3-sweep" devices)
    case ":$PATH:" in
      *":$prefix/bin:"*) echo "installed $prefix/bin/td3-sweep";;
      *) echo "installed $prefix/bin/td3-sweep; add $prefix/bin to your PATH (e.g. export PATH=\"$prefix/bin:\$PATH\")";;
    esac

# Show a sweep's expanded plan (runs, overrides, resolved learning rates, slots) without running it.
plan FILE: setup
    {{bin}} sweep {{FILE}} --dry-run

# Check sweep files for mistakes.
validate +FILES: setup
    {{bin}} validate {{FILES}}

# Train one run, e.g. `just train --steps 1000 --out /tmp/run --set networks.cnn.actor_cnn_lr=1e-5`.
train *ARGS: setup
    {{bin}} train {{ARGS}}

# TD3 vs the published Pendulum-v1 number: 3 seeds x 20k steps in parallel (about 8 min on 2 cores).
validate-td3 *ARGS: setup
    {{bin}} sweep sweeps/pendulum_reference.yaml --jobs 3 {{ARGS}}

# Re-classify a results folder and re-render its report without training.
report DIR *ARGS: setup
    {{bin}} report {{DIR}} {{ARGS}}

# Build td3-sweep/td3-bench against the lent GPU machine's torch 2.11 into .device-bin (see docs/gpu.md).
device-build *OUT:
    scripts/build-for-device.sh {{OUT}}

# Print the libtorch version, CUDA availability and the GPUs.
devices: setup
    {{bin}} devices

# Benchmarks (not tests): our TD3 update vs SB3 vs plain PyTorch, FLOPs, replay memory, sweep scaling; see bench/README.md.
bench *OUT:
    @scripts/setup-bench.sh
    bench/run.sh {{OUT}}

# Formatting, clippy with warnings denied, and every test (CI runs exactly this).
test:
    @SETUP_SKIP_BUILD=1 scripts/setup.sh
    cargo fmt --check
    cargo clippy --all-targets --quiet -- -D warnings
    INSTA_UPDATE=no cargo test --quiet
    .venv/bin/python -m pytest -q python/tests

# Format the code.
fmt:
    cargo fmt
