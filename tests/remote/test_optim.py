"""remote/optim.py: AdamW equal to torch.optim.AdamW (the oracle), without importing torch._dynamo."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from runkit import python_output

from remote.optim import AdamW

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 3))


def groups(m, wd):
    params = list(m.parameters())
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": wd},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def train(m, opt, steps, lrs):
    torch.manual_seed(1)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lrs[step]
        x = torch.randn(5, 6)
        loss = (m(x) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_every_step_equals_torchs_adamw_with_groups_and_a_changing_lr(wd):
    ours, theirs = model(), model()
    lrs = [1e-2 * (1 + i % 3) for i in range(25)]
    kw = {"lr": 1e-2, "betas": (0.9, 0.95), "eps": 1e-8}
    train(ours, AdamW(groups(ours, wd), **kw), 25, lrs)
    train(theirs, torch.optim.AdamW(groups(theirs, wd), **kw), 25, lrs)
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)


def test_state_dict_round_trip_resumes_exactly():
    kw = {"lr": 3e-3, "betas": (0.9, 0.95), "eps": 1e-8}
    whole = model()
    train(whole, AdamW(groups(whole, 0.1), **kw), 10, [3e-3] * 10)

    first = model()
    opt = AdamW(groups(first, 0.1), **kw)
    train(first, opt, 4, [3e-3] * 4)
    saved = copy.deepcopy(opt.state_dict())
    resumed = copy.deepcopy(first)
    opt2 = AdamW(groups(resumed, 0.1), **kw)
    opt2.load_state_dict(saved)
    torch.manual_seed(1)
    for _ in range(4):  # the same batches the first 4 steps drew
        torch.randn(5, 6)
    for _ in range(6):
        x = torch.randn(5, 6)
        (resumed(x) ** 2).mean().backward()
        opt2.step()
        opt2.zero_grad()
    for a, b in zip(resumed.parameters(), whole.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="different parameters"):
        AdamW([{"params": [torch.nn.Parameter(torch.zeros(2))]}], lr=1e-3).load_state_dict(saved)


def test_training_imports_no_dynamo():
    code = (
        "import sys, torch\n"
        "from remote.train import make_optimizer\nfrom remote.spec import TrainSpec\n"
        "m = torch.nn.Linear(4, 2)\nopt = make_optimizer(m, TrainSpec(), torch.device('cpu'))\n"
        "m(torch.randn(3, 4)).sum().backward()\ntorch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)\n"
        "opt.step(); opt.zero_grad(); opt.load_state_dict(opt.state_dict())\n"
        "print('torch._dynamo' in sys.modules)"
    )
    assert python_output(code) == "False"
