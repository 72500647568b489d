"""Merges the bench JSON files of one `just bench` into one Markdown table (stdout).

Reads <dir>/configs.json; each implementation's results from <impl>.json and/or
parts/<impl>.<config>.json (ours; sb3 as users run it; sb3_tuned and torch_tuned with the
allocator thresholds ours sets for itself; experiments); and, when present, replay.json,
scaling.json, load.json.
Writes the same text to <dir>/bench.md.
"""

import json
import os
import sys


def load(d, name):
    p = os.path.join(d, name)
    return json.load(open(p)) if os.path.exists(p) else None


def docs(d, impl):
    """`<impl>.json` and every `parts/<impl>.<config>.json`, in that order."""
    out = [load(d, impl + ".json")]
    parts = os.path.join(d, "parts")
    if os.path.isdir(parts):
        for f in sorted(os.listdir(parts)):
            if f.startswith(impl + ".") and f.endswith(".json"):
                out.append(load(parts, f))
    return [x for x in out if x]


def by_config(ds):
    """CPU results by config name; each carries the sgemm peak its own process measured."""
    res = {}
    for doc in ds:
        for r in doc["results"]:
            if r.get("device", "cpu") == "cpu":
                res[r["config"]] = dict(r, sgemm_gflops=doc.get("sgemm_gflops"))
    return res


def fmt(x, spec=".1f"):
    return "–" if x is None else format(x, spec)


def main():
    d = sys.argv[1]
    configs = load(d, "configs.json")
    ours_docs = docs(d, "ours")
    ours = by_config(ours_docs)
    sb3 = by_config(docs(d, "sb3"))
    sb3_t = by_config(docs(d, "sb3_tuned"))
    tor_t = by_config(docs(d, "torch_tuned"))
    experiments = [e for doc in docs(d, "torch_tuned") + docs(d, "experiments") for e in doc.get("experiments", [])]
    peaks = [doc["sgemm_gflops"] for doc in ours_docs]
    threads = ours_docs[0]["threads"] if ours_docs else 1
    lines = []
    load_doc = load(d, "load.json")
    if load_doc:
        lines.append(
            f"Machine: {load_doc.get('cpus')} CPUs; load average before {load_doc.get('before')}, "
            f"after {load_doc.get('after')}; {threads} intra-op thread(s); best of 3 rounds per cell."
        )
        lines.append("")
    lines.append(
        "| config | MFLOP/update | ours upd/s | SB3 upd/s | SB3 tuned upd/s | torch tuned upd/s "
        "| ours/SB3 | ours/SB3 tuned | ours/torch tuned | ours GFLOP/s | sgemm peak / ours | goals |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")

    def ups(table, n):
        return table.get(n, {}).get("updates_per_s")

    def ratio(a, b):
        return a / b if a and b else None

    for c in configs:
        n = c["name"]
        o = ours.get(n)
        ou, su, st, tt = ups(ours, n), ups(sb3, n), ups(sb3_t, n), ups(tor_t, n)
        r_sb3, r_sb3_t, r_tor = ratio(ou, su), ratio(ou, st), ratio(ou, tt)
        gf = o["gflops"] if o else None
        peak = o.get("sgemm_gflops") if o else None
        gap = peak / gf if peak and gf else None
        goals = []
        if c["pixels"]:
            goals.append(("≥1.3×SB3", r_sb3 is not None and r_sb3 >= 1.3))
            goals.append(("≥1×torch", r_tor is not None and r_tor >= 1.0))
            goals.append(("≤2.5× peak", gap is not None and gap <= 2.5))
        elif c["name"].startswith("c_"):
            goals.append(("≥1×SB3", r_sb3 is not None and r_sb3 >= 1.0))
        else:
            goals.append(("≥2×SB3", r_sb3 is not None and r_sb3 >= 2.0))
        g = ", ".join(f"{name} {'✓' if ok else '✗'}" for name, ok in goals)
        lines.append(
            f"| {n} | {c['flops_per_update'] / 1e6:.0f} | {fmt(ou)} | {fmt(su)} | {fmt(st)} | {fmt(tt)} "
            f"| {fmt(r_sb3, '.2f')} | {fmt(r_sb3_t, '.2f')} | {fmt(r_tor, '.2f')} | {fmt(gf)} | {fmt(gap, '.2f')} "
            f"| {g} |"
        )
    lines.append("")
    if peaks:
        lines.append(
            f"sgemm 2048² peak (libtorch, {threads} thread(s), measured in each `ours` process; "
            f"the row's ratio uses its own): {min(peaks):.1f}–{max(peaks):.1f} GFLOP/s."
        )
    ker = load(d, "kernels.json")
    if ker and ker.get("rows"):
        lines.append("")
        lines.append(
            "Encoder kernels alone (`td3-bench kernels`: libtorch/oneDNN, same thread count; weight and "
            "input gradients cost the forward's FLOPs each):"
        )
        lines.append("")
        lines.append("| config | layer | MFLOP | fwd ms | fwd GFLOP/s | weight-grad ms | GFLOP/s | input-grad ms | GFLOP/s |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in ker["rows"]:
            gf = lambda ms: r["mflop"] / ms if ms > 0 else None  # noqa: E731
            lines.append(
                f"| {r['config']} | {r['layer']} | {r['mflop']:.1f} | {r['fwd_ms']:.2f} | {fmt(gf(r['fwd_ms']))} "
                f"| {r['wgrad_ms']:.2f} | {fmt(gf(r['wgrad_ms']))} | {r['igrad_ms']:.2f} | {fmt(gf(r['igrad_ms']))} |"
            )
        lines.append("")
        by = {}
        for r in ker["rows"]:
            by.setdefault(r["config"], []).append(r)
        for c in configs:
            rows = by.get(c["name"])
            if not rows:
                continue
            # Per update: 4 encoder forwards (2 target, critic, and per actor step the actor's and
            # the critic's no_grad one), 1 + 1/d trained backwards (no input gradient for layer 0).
            fwd = sum(r["fwd_ms"] for r in rows)
            bwd = sum(r["wgrad_ms"] for r in rows) + sum(r["igrad_ms"] for r in rows[1:])
            per = 4 * fwd + (1 + 1 / c["policy_delay"]) * bwd
            ou = ups(ours, c["name"])
            su = ups(sb3, c["name"])
            need = 1e3 / (1.3 * su) if su else None
            # The same update if every gradient kernel ran as fast as its layer's forward (what
            # 1.3x needs where the kernels alone nearly fill the budget), plus the rest of ours.
            bwd_at_fwd = sum(r["fwd_ms"] for r in rows) + sum(r["fwd_ms"] for r in rows[1:])
            ideal = 4 * fwd + (1 + 1 / c["policy_delay"]) * bwd_at_fwd
            rest = 1e3 / ou - per if ou else None
            lines.append(
                f"- {c['name']}: the encoders' kernels take {per:.1f} ms per update at these speeds "
                f"(4 forwards {4 * fwd:.1f} ms + {1 + 1 / c['policy_delay']:.1f} backwards {(1 + 1 / c['policy_delay']) * bwd:.1f} ms); "
                f"ours takes {fmt(1e3 / ou if ou else None, '.1f')} ms in all (the rest: {fmt(rest, '.1f')} ms); "
                f"1.3× SB3 needs ≤ {fmt(need, '.1f')} ms. With every gradient kernel as fast as its forward, "
                f"the kernels would take {ideal:.1f} ms and ours {fmt(ideal + rest if rest is not None else None, '.1f')} ms."
            )
    rep = load(d, "replay.json")
    if rep:
        lines.append(
            f"Replay (frame store, {rep['image_size']}×{rep['image_size']}, stack {rep['frame_stack']}, "
            f"{rep['episode_len']}-step episodes): {rep['bytes_per_transition']:.0f} B/transition "
            f"(one frame = {rep['frame_bytes']} B) → 1M transitions = {rep['computed_1m_gb']:.2f} GB computed "
            f"(a buffer copying both stacks per transition: {rep['naive_1m_gb']:.1f} GB); "
            f"RSS at {rep['transitions']:,} transitions: +{rep['rss_after_mb'] - rep['rss_before_mb']:.0f} MB "
            f"= {rep['rss_bytes_per_transition']:.0f} B/transition → {rep['rss_extrapolated_1m_gb']:.2f} GB at 1M; "
            f"sample {rep['sample_us_b32']:.0f} µs/batch (B=32), {rep['sample_us_b256']:.0f} µs/batch (B=256); "
            f"push {rep['push_us']:.1f} µs."
        )
    sc = load(d, "scaling.json")
    if sc:
        j1, j2 = sc["jobs1"], sc["jobs2"]
        lines.append(
            f"Sweep scaling (4 identical {sc['steps']}-step 32×32 pixel runs, real `td3-sweep sweep`): "
            f"1 slot {j1['wall_s']:.1f} s, 2 slots {j2['wall_s']:.1f} s → parallel speed-up "
            f"{sc['speedup']:.2f}× (goal ≥1.8×; machine ceiling right now "
            f"{sc.get('machine', {}).get('ceiling', float('nan')):.2f}×: two sgemm processes vs one); harness overhead with 1 slot "
            f"{100 * sc['overhead_jobs1']:.1f}% of Σ run wall_s {j1['sum_run_wall_s']:.1f} s (goal ≤3%); "
            f"mean run wall_s 1 slot {j1['sum_run_wall_s'] / 4:.1f} s, 2 slots {j2['sum_run_wall_s'] / 4:.1f} s."
        )
    if experiments:
        lines.append("")
        lines.append("Variants of the parity graph (torch_td3.py --experiments; baseline re-measured beside each):")
        lines.append("")
        lines.append("| config | variant | baseline ms | variant ms | speed-up |")
        lines.append("|---|---|---:|---:|---:|")
        for e in experiments:
            lines.append(
                f"| {e['config']} | {e['variant']} | {e['baseline_ms']:.2f} | {e['variant_ms']:.2f} | {e['speedup']:.2f}× |"
            )
    text = "\n".join(lines) + "\n"
    with open(os.path.join(d, "bench.md"), "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
