"""The external-trainer harness's overhead per run (docs/external-trainer.md).

Runs the same small trainer (Python, standard library only) directly and as the runs of a sweep
with `trainer:` (one run at a time, so nothing overlaps), and reports per run:
- wall overhead: a trainer that writes one row and exits at once, sweep wall per run minus the
  trainer's own wall: the harness's start-up, the 100 ms polling and the record;
- CPU overhead: a trainer that writes a row every 5 ms for a few seconds, the sweep's children's
  CPU (harness + trainer) minus the trainer's own CPU run directly: the tailing and mapping.

Usage: .venv/bin/python bench/harness_overhead.py --binary target/release/td3-sweep [--runs 6]
       [--out FILE.json]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

TRAINER = r'''
import os, sys, time
rows, every = int(sys.argv[1]), float(sys.argv[2])
path = os.environ.get("TD3SWEEP_METRICS") or sys.argv[3]
with open(path, "a") as f:
    f.write("train_step,critic_loss,q_abs_max\n"); f.flush()
    for i in range(1, rows + 1):
        f.write(f"{i},0.5,{i * 0.01}\n"); f.flush()
        if every > 0:
            time.sleep(every)
'''


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def direct(py, trainer, rows, every, runs, tmp):
    """Wall and CPU per run of the trainer alone."""
    cpu0, t0 = children_cpu(), time.perf_counter()
    for i in range(runs):
        out = os.path.join(tmp, f"direct_{i}.csv")
        subprocess.run([py, trainer, str(rows), str(every), out], check=True,
                       env={k: v for k, v in os.environ.items() if not k.startswith("TD3SWEEP_")})
    return (time.perf_counter() - t0) / runs, (children_cpu() - cpu0) / runs


def swept(binary, py, trainer, rows, every, runs, tmp, name):
    """Wall and CPU per run of the same trainer as `runs` runs of a sweep, one at a time."""
    base = os.path.join(tmp, "agent.yaml")
    with open(base, "w") as f:
        f.write("note: 0\n")
    spec = os.path.join(tmp, f"{name}.yaml")
    with open(spec, "w") as f:
        f.write(f"name: {name}\nbase: agent.yaml\nsteps: {rows}\nseeds: {runs}\n")
        f.write(f"trainer:\n  command: [{py}, {trainer}, '{rows}', '{every}', unused]\n")
    results = os.path.join(tmp, "results")
    cpu0, t0 = children_cpu(), time.perf_counter()
    p = subprocess.run([binary, "sweep", spec, "--results", results, "--jobs", "1"],
                       capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if p.returncode not in (0, 10, 11, 12):
        sys.exit(f"sweep failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    recs = []
    for d in os.listdir(os.path.join(results, name, "runs")):
        with open(os.path.join(results, name, "runs", d, "run.json")) as f:
            recs.append(json.load(f))
    assert all(r["outcome"] == "completed" for r in recs), [r["outcome"] for r in recs]
    harness_wall = sum(r["wall_s"] for r in recs) / len(recs)
    return wall / runs, cpu / runs, harness_wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/td3-sweep")
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--busy-rows", type=int, default=1000)
    ap.add_argument("--out")
    a = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        trainer = os.path.join(tmp, "trainer.py")
        with open(trainer, "w") as f:
            f.write(TRAINER)
        d_wall, d_cpu = direct(py, trainer, 1, 0.0, a.runs, tmp)
        s_wall, s_cpu, h_wall = swept(a.binary, py, trainer, 1, 0.0, a.runs, tmp, "quick")
        b_wall, b_cpu = direct(py, trainer, a.busy_rows, 0.005, a.runs, tmp)
        sb_wall, sb_cpu, hb_wall = swept(a.binary, py, trainer, a.busy_rows, 0.005, a.runs, tmp, "busy")
    out = {
        "runs": a.runs,
        "quick": {"direct_wall_s": d_wall, "sweep_wall_s_per_run": s_wall,
                  "harness_wall_s": h_wall, "overhead_wall_s": s_wall - d_wall,
                  "direct_cpu_s": d_cpu, "sweep_cpu_s_per_run": s_cpu},
        "busy": {"rows": a.busy_rows, "row_every_s": 0.005, "direct_wall_s": b_wall,
                 "sweep_wall_s_per_run": sb_wall, "harness_wall_s": hb_wall,
                 "direct_cpu_s": b_cpu, "sweep_cpu_s_per_run": sb_cpu,
                 "overhead_cpu_s": sb_cpu - b_cpu,
                 "overhead_cpu_fraction_of_wall": (sb_cpu - b_cpu) / b_wall},
    }
    print(f"harness overhead, {a.runs} runs one at a time:")
    print(f"  1-row trainer: {d_wall:.3f} s direct, {s_wall:.3f} s per run in a sweep "
          f"(+{s_wall - d_wall:.3f} s per run, sweep start-up and report included)")
    print(f"  {a.busy_rows} rows every 5 ms: {b_cpu:.3f} s CPU direct, {sb_cpu:.3f} s per run in a sweep "
          f"(+{sb_cpu - b_cpu:.3f} s CPU per run over {b_wall:.1f} s: "
          f"{100 * (sb_cpu - b_cpu) / b_wall:.1f}% of one core)")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
