"""Plain-PyTorch TD3 with exactly the computation graph of src/train/td3.rs (the parity check).

Per update, as `Td3::update` does it:
  target (no_grad): target actor on next_obs (+ clipped noise, clamp), target critic CNN on
    next_obs, min of the two target Q heads;
  critic: critic CNN + both Q heads on (obs, act), sum of two MSEs, backward, per-tensor grad
    norms (one _foreach_norm), one host sync for the finiteness check, fused Adam
    (src/train/adam.rs, torch._fused_adam_ over each group) on the critic CNN and the critic heads;
  every `policy_delay`-th update: critic heads frozen, actor CNN + head on obs, critic CNN
    features under no_grad, Q1, -mean, backward, grad norms, a second host sync, Adam on actor
    CNN and head, Polyak averaging of every target (one _foreach_lerp_ per group);
  every update: the parameter norm (_foreach_norm, stacked).
ReLUs are in place, as in src/train/nets.rs.
Batches are sampled like `Replay::sample`: gather u8 stacks on the host, convert to float / 255.

`--experiments` also times variants of that graph (the optimisation ideas of issue 9), each
toggle alone against the baseline in the same process; bench/README.md lists them.

`--parity DIR` is not a benchmark: it is tests/it/torch_parity.rs's other half. It loads the weights,
batches and smoothing-noise draws the Rust test wrote, runs `Td3.update` on them and writes the
losses, gradient norms and updated weights back (see `parity`).
"""

import argparse
import copy
import json
import math
import os
import time

import numpy as np
import torch
from torch import nn

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


class Encoder(nn.Module):
    def __init__(self, c, inplace=True):
        super().__init__()
        self.inplace = inplace
        ch, side = c["obs_shape"][0], c["obs_shape"][2]
        convs = []
        for o, k, s in zip(c["channels"], c["kernels"], c["strides"]):
            convs.append(nn.Conv2d(ch, o, k, s))
            ch, side = o, (side - k) // s + 1
        self.convs = nn.ModuleList(convs)
        self.fc = nn.Linear(ch * side * side, c["feature_dim"])

    def forward(self, x):
        relu = torch.relu_ if self.inplace else torch.relu
        for conv in self.convs:
            x = relu(conv(x))
        return relu(self.fc(x.flatten(1)))


class Mlp(nn.Module):
    def __init__(self, inp, hidden, out, inplace=True):
        super().__init__()
        self.inplace = inplace
        dims = [inp] + list(hidden) + [out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = torch.relu_(x) if self.inplace else torch.relu(x)
        return x


class Adam:
    """src/train/adam.rs: torch.optim.Adam's defaults as one fused kernel over the group
    (`torch._fused_adam_`, what `torch.optim.Adam(fused=True)` calls), the state held here;
    `per_tensor=True` is the previous hand-written version, a few ops per parameter tensor."""

    def __init__(self, params, lr, per_tensor=False):
        self.params = list(params)
        self.lr = lr
        self.per_tensor = per_tensor
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros(()) for _ in self.params]

    def zero_grad(self):
        grads = [p.grad for p in self.params if p.grad is not None]
        if self.per_tensor:
            for g in grads:
                g.detach_()
                g.zero_()
        elif grads:
            torch._foreach_zero_(grads)

    @torch.no_grad()
    def step(self):
        idx = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not self.per_tensor:
            steps = [self.steps[i] for i in idx]
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                [self.params[i] for i in idx],
                [self.params[i].grad for i in idx],
                [self.m[i] for i in idx],
                [self.v[i] for i in idx],
                [],
                steps,
                lr=self.lr,
                beta1=BETA1,
                beta2=BETA2,
                weight_decay=0.0,
                eps=EPS,
                amsgrad=False,
                maximize=False,
            )
            return
        for i in idx:
            p, g = self.params[i], self.params[i].grad
            self.steps[i] += 1
            t = int(self.steps[i])
            self.m[i].lerp_(g, 1.0 - BETA1)
            self.v[i].mul_(BETA2).addcmul_(g, g * (1.0 - BETA2))
            bc1 = 1.0 - BETA1**t
            bc2 = 1.0 - BETA2**t
            denom = (self.v[i].sqrt() / math.sqrt(bc2)).add_(EPS)
            p.add_((self.m[i] / denom).mul_(-self.lr / bc1))


def grad_norms(params, per_tensor):
    grads = [p.grad for p in params]
    if not per_tensor and all(g is not None for g in grads):
        return torch.stack(torch._foreach_norm(grads))
    return torch.stack([g.norm() if g is not None else torch.zeros(()) for g in grads])


# The names src/train/td3.rs gives the five networks, in `Td3.modules` order.
RUST_MODULES = ["actor_cnn", "critic_cnn", "actor", "q1", "q2"]


def rust_param_name(name):
    """A parameter's name as src/train/nets.rs spells it: `convs.0.weight` → `conv0.weight`,
    `layers.1.bias` → `l1.bias`, `fc.weight` unchanged."""
    head, _, rest = name.partition(".")
    if head in ("convs", "layers"):
        index, _, rest = rest.partition(".")
        return ("conv" if head == "convs" else "l") + index + "." + rest
    return name


class Td3:
    def __init__(self, c, opts):
        self.c, self.o = c, opts
        pixels = c["pixels"]
        feat = c["feature_dim"] if pixels else c["obs_shape"][0]
        a = c["act_dim"]
        ip = not opts.get("out_of_place_relu")
        self.actor_cnn = Encoder(c, ip) if pixels else None
        self.critic_cnn = Encoder(c, ip) if pixels else None
        self.actor_head = Mlp(feat, c["actor_hidden"], a, ip)
        self.q1 = Mlp(feat + a, c["critic_hidden"], 1, ip)
        self.q2 = Mlp(feat + a, c["critic_hidden"], 1, ip)
        online = [self.actor_cnn, self.critic_cnn, self.actor_head, self.q1, self.q2]
        if opts.get("channels_last"):
            for m in online:
                if m is not None:
                    m.to(memory_format=torch.channels_last)
        self.t_actor_cnn, self.t_critic_cnn, self.t_actor_head, self.t_q1, self.t_q2 = (
            copy.deepcopy(m) for m in online
        )
        for m in [self.t_actor_cnn, self.t_critic_cnn, self.t_actor_head, self.t_q1, self.t_q2]:
            if m is not None:
                m.requires_grad_(False)
        fe = opts.get("per_tensor_adam", False)
        self.critic_cnn_p = list(self.critic_cnn.parameters()) if pixels else []
        self.actor_cnn_p = list(self.actor_cnn.parameters()) if pixels else []
        self.critic_head_p = list(self.q1.parameters()) + list(self.q2.parameters())
        self.actor_head_p = list(self.actor_head.parameters())
        # The agent's default learning rates unless the config gives them (the parity check does).
        lr = dict(actor_cnn=1e-4, critic_cnn=1e-4, actor_head=3e-4, critic_head=3e-4)
        lr.update(c.get("lrs", {}))
        self.opt_critic_cnn = Adam(self.critic_cnn_p, lr["critic_cnn"], fe) if pixels else None
        self.opt_actor_cnn = Adam(self.actor_cnn_p, lr["actor_cnn"], fe) if pixels else None
        self.opt_critic_head = Adam(self.critic_head_p, lr["critic_head"], fe)
        self.opt_actor_head = Adam(self.actor_head_p, lr["actor_head"], fe)
        self.pairs = []
        for t, m in [
            (self.t_actor_cnn, self.actor_cnn),
            (self.t_critic_cnn, self.critic_cnn),
            (self.t_actor_head, self.actor_head),
            (self.t_q1, self.q1),
            (self.t_q2, self.q2),
        ]:
            if m is not None:
                self.pairs += list(zip(t.parameters(), m.parameters()))
        self.all_p = self.actor_cnn_p + self.critic_cnn_p + self.actor_head_p + self.critic_head_p
        self.total_it = 0

    def modules(self, target=False):
        if target:
            return [self.t_actor_cnn, self.t_critic_cnn, self.t_actor_head, self.t_q1, self.t_q2]
        return [self.actor_cnn, self.critic_cnn, self.actor_head, self.q1, self.q2]

    def named_tensors(self):
        """Online and target parameters under the names `Td3::network_tensors` gives them
        (`q1.l0.weight`, `target.actor_cnn.conv1.bias`, ...)."""
        out = {}
        for prefix, target in (("", False), ("target.", True)):
            for name, m in zip(RUST_MODULES, self.modules(target)):
                if m is not None:
                    for n, p in m.named_parameters():
                        out[f"{prefix}{name}.{rust_param_name(n)}"] = p
        return out

    def actor(self, cnn, head, obs):
        f = cnn(obs) if cnn is not None else obs
        return torch.tanh(head(f))

    def feats(self, cnn, obs):
        return cnn(obs) if cnn is not None else obs

    def update(self, b):
        """One update, as `Td3::update`. Returns its scalars as tensors (`critic_loss`,
        `critic_head_gn`, ..., `actor_loss` and the actor's norms only when the actor updated),
        per-parameter gradient norms under `<side>_per` (in the order of the parameter lists),
        and `finite`, the critic's finiteness check; the scalars are read by the parity check
        only, so the benchmark syncs no more than before."""
        c, o = self.c, self.o
        per_tensor = o.get("per_tensor_norms", False)
        self.total_it += 1
        obs, act, rew, next_obs, not_done, noise = b
        with torch.no_grad():
            n = (noise * c["policy_noise"]).clamp(-c["noise_clip"], c["noise_clip"])
            next_a = (self.actor(self.t_actor_cnn, self.t_actor_head, next_obs) + n).clamp(-1, 1)
            sa = torch.cat([self.feats(self.t_critic_cnn, next_obs), next_a], 1)
            tq = torch.minimum(self.t_q1(sa), self.t_q2(sa))
            y = rew + not_done * c["discount"] * tq
        sa = torch.cat([self.feats(self.critic_cnn, obs), act], 1)
        q1, q2 = self.q1(sa), self.q2(sa)
        loss = nn.functional.mse_loss(q1, y) + nn.functional.mse_loss(q2, y)
        if self.opt_critic_cnn:
            self.opt_critic_cnn.zero_grad()
        self.opt_critic_head.zero_grad()
        loss.backward()
        zero = torch.zeros(())
        cnn_per = grad_norms(self.critic_cnn_p, per_tensor) if self.critic_cnn_p else None
        head_per = grad_norms(self.critic_head_p, per_tensor)
        cnn_gn = cnn_per.norm() if cnn_per is not None else zero
        head_gn = head_per.norm()
        with torch.no_grad():
            stats = dict(
                q_mean=q1.mean(),
                q_abs_max=torch.maximum(q1.abs().max(), q2.abs().max()),
                target_q_mean=y.mean(),
            )
        ok = torch.stack([loss.detach(), cnn_gn, head_gn]).isfinite().all()
        stats.update(
            critic_loss=loss.detach(),
            critic_cnn_gn=cnn_gn,
            critic_head_gn=head_gn,
            critic_cnn_per=cnn_per,
            critic_head_per=head_per,
            finite=ok,
        )
        if not o.get("no_sync") and not bool(ok):
            return stats
        if self.opt_critic_cnn:
            self.opt_critic_cnn.step()
        self.opt_critic_head.step()
        if self.total_it % c["policy_delay"] == 0:
            freeze = not o.get("no_freeze")
            if freeze:
                for p in self.critic_head_p:
                    p.requires_grad_(False)
            a = self.actor(self.actor_cnn, self.actor_head, obs)
            if o.get("critic_features_with_grad"):
                f = self.feats(self.critic_cnn, obs)
            else:
                with torch.no_grad():
                    f = self.feats(self.critic_cnn, obs)
            aloss = -self.q1(torch.cat([f, a], 1)).mean()
            if self.opt_actor_cnn:
                self.opt_actor_cnn.zero_grad()
            self.opt_actor_head.zero_grad()
            aloss.backward()
            if freeze:
                for p in self.critic_head_p:
                    p.requires_grad_(True)
            acnn = grad_norms(self.actor_cnn_p, per_tensor) if self.actor_cnn_p else None
            ahead = grad_norms(self.actor_head_p, per_tensor)
            agn = acnn.norm() if acnn is not None else zero
            ahn = ahead.norm()
            aok = torch.stack([aloss.detach(), agn, ahn]).isfinite().all()
            stats.update(
                actor_loss=aloss.detach(),
                actor_cnn_gn=agn,
                actor_head_gn=ahn,
                actor_cnn_per=acnn,
                actor_head_per=ahead,
            )
            if o.get("no_sync") or bool(aok):
                if self.opt_actor_cnn:
                    self.opt_actor_cnn.step()
                self.opt_actor_head.step()
                with torch.no_grad():
                    if o.get("per_tensor_polyak"):
                        for t, s in self.pairs:
                            t.lerp_(s, c["tau"])
                    else:
                        ts, ss = zip(*self.pairs)
                        torch._foreach_lerp_(list(ts), list(ss), c["tau"])
        with torch.no_grad():
            if per_tensor:
                pn = torch.stack([p.detach().norm() for p in self.all_p]).norm()
            else:
                pn = torch.stack(torch._foreach_norm(self.all_p)).norm()
        stats["params_norm"] = pn
        return stats

    def layer_names(self, side):
        """The names of `update`'s `<side>_per` entries (side: critic_cnn, critic_head,
        actor_cnn, actor_head), as in `Td3::layer_names`."""
        mods = dict(
            actor_cnn=[self.actor_cnn],
            actor_head=[self.actor_head],
            critic_cnn=[self.critic_cnn],
            critic_head=[self.q1, self.q2],
        )[side]
        names = dict(zip(map(id, self.modules()), RUST_MODULES))
        return [f"{names[id(m)]}.{rust_param_name(n)}" for m in mods for n, _ in m.named_parameters()]


def parity(folder):
    """The PyTorch half of tests/it/torch_parity.rs. Reads `config.json` (this file's config keys,
    plus `lrs` and `updates`) and `in.npz` (`weights.<name>` under `Td3::network_tensors`'
    names, `batch<k>.<obs|act|rew|next_obs|not_done|noise>`) from `folder`; loads the weights;
    runs `Td3.update` on each batch in turn; writes `out.npz`: `update<k>.<scalar>`,
    `update<k>.grad.<param>` (gradient norms before clipping) and the final `weights.<name>`."""
    torch.set_num_threads(1)
    with open(os.path.join(folder, "config.json")) as f:
        c = json.load(f)
    data = np.load(os.path.join(folder, "in.npz"))
    agent = Td3(c, {})
    params = agent.named_tensors()
    given = {k.removeprefix("weights.") for k in data.files if k.startswith("weights.")}
    if given != set(params):
        raise SystemExit(f"weights differ: missing {sorted(set(params) - given)}, unknown {sorted(given - set(params))}")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(torch.from_numpy(data["weights." + name]))
    out = {}
    fields = ("obs", "act", "rew", "next_obs", "not_done", "noise")
    for k in range(c["updates"]):
        stats = agent.update(tuple(torch.from_numpy(data[f"batch{k}.{f}"]) for f in fields))
        for key, v in stats.items():
            if key.endswith("_per"):
                if v is not None:
                    for name, norm in zip(agent.layer_names(key.removesuffix("_per")), v):
                        out[f"update{k}.grad.{name}"] = norm.numpy()
            elif key != "finite":
                out[f"update{k}.{key}"] = v.numpy()
    for name, p in agent.named_tensors().items():
        out["weights." + name] = p.detach().numpy()
    np.savez(os.path.join(folder, "out.npz"), **out)


class Buffer:
    """Replay::sample's work: gather u8 (or f32) stacks on the host, to float, /255 for pixels."""

    def __init__(self, c, rng, channels_last=False):
        n, shape = c["fill"], tuple(c["obs_shape"])
        self.c, self.rng, self.cl = c, rng, channels_last
        if c["pixels"]:
            self.obs = rng.integers(0, 256, (n,) + shape, dtype=np.uint8)
            self.next = rng.integers(0, 256, (n,) + shape, dtype=np.uint8)
        else:
            self.obs = rng.standard_normal((n,) + shape, dtype=np.float32)
            self.next = rng.standard_normal((n,) + shape, dtype=np.float32)
        self.act = rng.uniform(-1, 1, (n, c["act_dim"])).astype(np.float32)
        self.rew = np.full((n, 1), -1.0, np.float32)
        self.nd = np.ones((n, 1), np.float32)

    def sample(self):
        c, b = self.c, self.c["batch"]
        idx = self.rng.integers(0, c["fill"], b)

        def px(a):
            t = torch.from_numpy(a[idx])
            if c["pixels"]:
                t = t.float() / 255.0
                if self.cl:
                    t = t.contiguous(memory_format=torch.channels_last)
            return t

        noise = torch.from_numpy(self.rng.standard_normal((b, c["act_dim"]), dtype=np.float32))
        return (
            px(self.obs),
            torch.from_numpy(self.act[idx]),
            torch.from_numpy(self.rew[idx]),
            px(self.next),
            torch.from_numpy(self.nd[idx]),
            noise,
        )


def bench(c, opts, scale=1.0):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    buf = Buffer(c, rng, opts.get("channels_last", False))
    agent = Td3(c, opts)
    for _ in range(c["warmup"]):
        agent.update(buf.sample())
    per_round = max(1, round(c["updates"] * scale) // c["rounds"])
    rounds = []
    for _ in range(c["rounds"]):
        t = time.perf_counter()
        for _ in range(per_round):
            agent.update(buf.sample())
        rounds.append(per_round / (time.perf_counter() - t))
    best = max(rounds)
    return {
        "config": c["name"],
        "device": "cpu",
        "updates": per_round * c["rounds"],
        "updates_per_s": best,
        "rounds_per_s": rounds,
        "ms_per_update": 1e3 / best,
        "flops_per_update": c["flops_per_update"],
        "gflops": c["flops_per_update"] * best / 1e9,
    }


EXPERIMENTS = {
    "per_tensor_adam": "the hand-written Adam td3.rs had before: ~8 ops per parameter tensor instead of one fused kernel",
    "per_tensor_norms": "one norm() per tensor instead of one _foreach_norm",
    "per_tensor_polyak": "one lerp_ per tensor instead of one _foreach_lerp_",
    "out_of_place_relu": "relu() allocating a new tensor instead of relu_()",
    "all_before": "all four above: the update as td3.rs did it before issue 9's changes",
    "no_sync": "no host sync per step (finiteness checks skipped)",
    "channels_last": "channels-last weights and inputs",
    "critic_features_with_grad": "actor step computes critic CNN features WITH grad (cost of not using no_grad)",
    "no_freeze": "critic heads not frozen in the actor step (SB3 style)",
}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--parity", metavar="DIR", help="run the parity check's update on DIR/in.npz (no benchmark)")
    ap.add_argument("--configs")
    ap.add_argument("--out")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default=None)
    ap.add_argument("--experiments", default=None, help="comma-separated config names to run the variants on")
    ap.add_argument("--experiment-scale", type=float, default=0.5)
    args = ap.parse_args()
    if args.parity:
        parity(args.parity)
        return
    if not (args.configs and args.out):
        ap.error("--configs and --out are required (unless --parity)")
    torch.set_num_threads(args.threads)
    configs = json.load(open(args.configs))
    only = set(args.only.split(",")) if args.only else None
    results = []
    for c in configs:
        if only and c["name"] not in only:
            continue
        r = bench(c, {})
        print(f"torch_td3: {c['name']:<26} {r['updates_per_s']:9.2f} updates/s {r['ms_per_update']:8.2f} ms", flush=True)
        results.append(r)
    experiments = []
    if args.experiments:
        for c in configs:
            if c["name"] not in args.experiments.split(","):
                continue
            base = bench(c, {}, args.experiment_scale)
            for name, what in EXPERIMENTS.items():
                if not c["pixels"] and name in ("channels_last", "critic_features_with_grad"):
                    continue  # no CNN: these would be the baseline again
                opts = (
                    dict(per_tensor_adam=1, per_tensor_norms=1, per_tensor_polyak=1, out_of_place_relu=1)
                    if name == "all_before"
                    else {name: True}
                )
                r = bench(c, opts, args.experiment_scale)
                # Re-measure the baseline next to each variant: load on this machine drifts.
                base2 = bench(c, {}, args.experiment_scale)
                b = max(base["updates_per_s"], base2["updates_per_s"])
                base = base2
                experiments.append(
                    {
                        "config": c["name"],
                        "variant": name,
                        "what": what,
                        "baseline_ms": 1e3 / b,
                        "variant_ms": r["ms_per_update"],
                        "speedup": r["updates_per_s"] / b,
                    }
                )
                print(f"torch_td3 experiment: {c['name']} {name}: {1e3 / b:.2f} ms → {r['ms_per_update']:.2f} ms", flush=True)
    out = {
        "implementation": "torch",
        "threads": args.threads,
        "torch": torch.__version__,
        "results": results,
        "experiments": experiments,
    }
    with open(args.out + ".tmp", "w") as f:
        json.dump(out, f, indent=2)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
