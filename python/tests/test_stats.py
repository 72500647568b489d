"""grad_norm and q_stats against torch's own numbers; the package imports without torch."""

import math
import subprocess
import sys

import pytest
import torch

from td3sweep import grad_norm, q_stats


def _net_with_grads(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 4)
    )
    loss = (net(torch.randn(5, 3, 8, 8)) ** 2).sum() * 1000
    loss.backward()
    return net


def test_grad_norm_is_the_norm_clip_grad_norm_returns():
    net = _net_with_grads()
    ours = grad_norm(net)
    theirs = float(torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=1.0))
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert ours > 1.0  # before clipping: the clip above did not change what we measured
    # After the clip the gradient's norm is 1: grad_norm reads whatever .grad holds now.
    assert grad_norm(net) == pytest.approx(1.0, rel=1e-5)


def test_grad_norm_takes_modules_parameters_and_lists():
    net = _net_with_grads(1)
    whole = grad_norm(net)
    assert grad_norm(net.parameters()) == pytest.approx(whole, rel=1e-6)
    conv, lin = net[0], net[3]
    assert grad_norm([conv, lin]) == pytest.approx(whole, rel=1e-6)
    parts = math.hypot(grad_norm(conv), grad_norm(lin))
    assert parts == pytest.approx(whole, rel=1e-6)
    assert grad_norm(lin.weight) == pytest.approx(float(lin.weight.grad.norm()), rel=1e-6)


def test_grad_norm_is_none_without_gradients():
    net = torch.nn.Linear(3, 2)
    assert grad_norm(net) is None
    assert grad_norm(torch.nn.Flatten()) is None  # no parameters at all (SB3's state extractor)
    net.weight.grad = torch.ones_like(net.weight)  # bias has none: skipped, not an error
    assert grad_norm(net) == pytest.approx(math.sqrt(6))


def test_q_stats_of_a_tensor_a_list_and_twin_critics():
    q = torch.tensor([[1.0], [-3.0], [2.0]])
    assert q_stats(q) == {"q_mean": 0.0, "q_abs_max": 3.0}
    assert q_stats([1.0, -3.0, 2.0]) == {"q_mean": 0.0, "q_abs_max": 3.0}
    q2 = torch.tensor([[10.0], [0.0], [-20.0]])
    twin = q_stats((q, q2))
    assert twin == {"q_mean": 0.0, "q_abs_max": 20.0}  # Q1's mean, |Q| over both


def test_q_stats_keeps_nan_visible():
    assert math.isnan(q_stats([1.0, float("nan")])["q_abs_max"])
    assert math.isnan(q_stats(torch.tensor([1.0, float("nan")]))["q_abs_max"])
    assert math.isnan(q_stats((torch.ones(2), torch.tensor([float("nan"), 1.0])))["q_abs_max"])
    with pytest.raises(ValueError):
        q_stats([])


def test_importing_td3sweep_does_not_import_torch():
    code = "import sys, td3sweep; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=_env_with_package())
    assert out.stdout.strip() == "False"


def _env_with_package():
    import os
    from pathlib import Path

    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
    return env
