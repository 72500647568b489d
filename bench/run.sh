#!/usr/bin/env bash
# Runs every measurement of `just bench` and prints one Markdown report (bench/README.md).
# Usage: bench/run.sh [OUT_DIR] ; env: BENCH_THREADS (1), BENCH_SCALE (1.0), BENCH_SCALING_STEPS
# (2500), BENCH_SKIP_SCALING=1, BENCH_EXPERIMENTS (configs for the parity-graph variants, "" for
# none), BENCH_CONFIGS (comma-separated subset).
#
# The machine is shared, so load drifts: every implementation runs config by config, one right
# after the other, and each ratio in the report compares numbers taken within seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/bench}
THREADS=${BENCH_THREADS:-1}
SCALE=${BENCH_SCALE:-1.0}
EXPERIMENTS=${BENCH_EXPERIMENTS-a_px48_b32,d_state_64_64_b64}
PY=.venv/bin/python
BENCH=target/release/td3-bench
# Large-allocation tunables for the Python processes' "tuned" columns: keep freed tensors in the
# heap instead of returning them to the kernel, so the next update does not page-fault its buffers
# in again. Our binaries set the same thresholds themselves at start-up (src/torch_ext).
TUNED="glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=536870912"
rm -rf "$OUT/parts"
rm -f "$OUT"/{ours,sb3,sb3_tuned,torch_tuned,kernels,replay,scaling,load,bench}.json "$OUT/bench.md"
mkdir -p "$OUT/parts"
load() { cut -d' ' -f1-3 /proc/loadavg; }
BEFORE=$(load)
echo "bench: load average $BEFORE on $(nproc) CPUs; results in $OUT" >&2

"$BENCH" configs --out "$OUT/configs.json" --scale "$SCALE"
CONFIGS=${BENCH_CONFIGS:-$($PY -c 'import json,sys; print(",".join(c["name"] for c in json.load(open(sys.argv[1]))))' "$OUT/configs.json")}
for c in ${CONFIGS//,/ }; do
  # ours sets the same allocator thresholds itself (sys::tune_allocator), so it runs once.
  "$BENCH" updates --out "$OUT/parts/ours.$c.json" --threads "$THREADS" --scale "$SCALE" --only "$c"
  $PY bench/sb3_td3.py --configs "$OUT/configs.json" --out "$OUT/parts/sb3.$c.json" --threads "$THREADS" --only "$c"
  GLIBC_TUNABLES=$TUNED $PY bench/sb3_td3.py --configs "$OUT/configs.json" \
    --out "$OUT/parts/sb3_tuned.$c.json" --threads "$THREADS" --only "$c"
  GLIBC_TUNABLES=$TUNED $PY bench/torch_td3.py --configs "$OUT/configs.json" \
    --out "$OUT/parts/torch_tuned.$c.json" --threads "$THREADS" --only "$c"
done
if [ -n "$EXPERIMENTS" ]; then
  GLIBC_TUNABLES=$TUNED $PY bench/torch_td3.py --configs "$OUT/configs.json" --out "$OUT/parts/experiments.json" \
    --threads "$THREADS" --only none --experiments "$EXPERIMENTS"
fi
"$BENCH" kernels --out "$OUT/kernels.json" --threads "$THREADS"
"$BENCH" replay --out "$OUT/replay.json" --transitions 100000 --image-size 84 --frame-stack 3
if [ "${BENCH_SKIP_SCALING:-0}" != 1 ]; then
  $PY bench/scaling.py --binary target/release/td3-sweep --base configs/td3.yaml \
    --steps "${BENCH_SCALING_STEPS:-2500}" --out "$OUT/scaling.json" --bench "$BENCH"
fi
# The external-trainer harness's overhead per run (docs/external-trainer.md); it prints its own lines.
$PY bench/harness_overhead.py --binary target/release/td3-sweep --out "$OUT/harness.json" >&2
printf '{"cpus": %s, "before": "%s", "after": "%s"}\n' "$(nproc)" "$BEFORE" "$(load)" > "$OUT/load.json"
echo >&2
$PY bench/report.py "$OUT"
