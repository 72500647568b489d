"""The measurements the criteria judge, computed as td3-sweep's built-in trainer computes them.

`grad_norm` is the total L2 norm of a network's gradients before clipping (one norm over all its
parameters, the value `torch.nn.utils.clip_grad_norm_` returns); `q_stats` the mean and largest
magnitude of a batch's Q estimates. torch is imported only when a tensor is passed, so the
package itself imports without it.
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, Optional


def _is_tensor(x) -> bool:
    # Duck-typed so this module never imports torch for a plain list of floats.
    return hasattr(x, "detach") and hasattr(x, "dtype")


def _parameters(obj) -> Iterable:
    """The parameters of a module, a tensor, or an iterable of modules and tensors."""
    if hasattr(obj, "parameters") and callable(obj.parameters):
        yield from obj.parameters()
    elif _is_tensor(obj):
        yield obj
    else:
        for item in obj:
            yield from _parameters(item)


def grad_norm(params) -> Optional[float]:
    """Total L2 norm of the gradients of `params`, or None when no parameter has a gradient.

    `params` is an `nn.Module`, a tensor, or an iterable of them (e.g. `net.parameters()`, or
    `[critic.qf0, critic.qf1]`). Call it after `loss.backward()` and before any clipping or
    optimizer step: it is the norm `clip_grad_norm_` would clip and returns, over every parameter
    at once, as td3-sweep's built-in trainer logs it. It reads a float, so on a GPU it waits for
    the backward pass to finish.
    """
    import torch

    grads = [p.grad.detach() for p in _parameters(params) if getattr(p, "grad", None) is not None]
    if not grads:
        return None
    device = grads[0].device
    # One norm per tensor, then the norm of those norms: clip_grad_norm_'s formula (and its
    # result in float32 up to rounding), on one device so it works for a model split across GPUs.
    norms = [torch.linalg.vector_norm(g, 2.0).to(device) for g in grads]
    return float(torch.linalg.vector_norm(torch.stack(norms), 2.0))


def q_stats(q) -> Dict[str, float]:
    """{"q_mean", "q_abs_max"} of a batch's Q estimates, ready for `Monitor.record(**...)`.

    `q` is a tensor, a sequence of numbers, or a tuple/list of tensors (twin critics, as SB3's
    `critic(obs, actions)` returns them). For twin critics, q_mean is the first critic's mean
    (Q1 is the one the actor ascends) and q_abs_max the largest |Q| of either, so a blow-up in one
    critic is never hidden: td3-sweep's built-in trainer logs the same two values.
    """
    if isinstance(q, (tuple, list)) and q and all(_is_tensor(t) for t in q):
        first, rest = q[0], q
    else:
        first, rest = q, [q]
    if _is_tensor(first):
        import torch

        with torch.no_grad():
            if first.numel() == 0:
                raise ValueError("q_stats: empty Q batch")
            mean = float(first.detach().float().mean())
            # torch's max propagates NaN; Python's max over the critics must too.
            per_critic = [float(t.detach().abs().max()) for t in rest]
            abs_max = math.nan if any(math.isnan(v) for v in per_critic) else max(per_critic)
        return {"q_mean": mean, "q_abs_max": abs_max}
    values = [float(v) for v in first]
    if not values:
        raise ValueError("q_stats: empty Q batch")
    mean = math.fsum(values) / len(values)
    abs_max = math.nan if any(math.isnan(v) for v in values) else max(abs(v) for v in values)
    return {"q_mean": mean, "q_abs_max": abs_max}
