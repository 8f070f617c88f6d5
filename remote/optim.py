"""AdamW in plain torch ops: the same update as ``torch.optim.AdamW`` (amsgrad off).

Why not torch's: constructing any ``torch.optim`` optimizer imports ``torch._dynamo``
(its methods are wrapped in ``torch._disable_dynamo``), 2.2-2.6 s of CPU on a 2-core
host, paid by every training job before its first step: nearly as much as importing
torch.  tests/remote/test_optim.py checks this one against ``torch.optim.AdamW``, step
for step, as the oracle.

Update, per parameter p with gradient g, at step t (1-based), for its group's lr, betas
(b1, b2), eps and weight_decay (decoupled, as in Loshchilov & Hutter):

    p <- p * (1 - lr * weight_decay)
    m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
    p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

The moments live in fp32 like the parameters (bf16 enters only through autocast), and
the work is done with the ``torch._foreach_*`` kernels, one launch per op for a whole
group on a GPU, as torch's own multi-tensor implementation.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Tuple

import torch


class AdamW:
    def __init__(
        self,
        groups: Iterable[Dict[str, Any]],
        lr: float,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        self.param_groups: List[Dict[str, Any]] = []
        for group in groups:
            group = {**defaults, **group, "params": list(group["params"])}
            if group["params"]:
                self.param_groups.append(group)
        self.step_count = 0
        self.state: Dict[torch.Tensor, Dict[str, torch.Tensor]] = {}

    def _params(self) -> List[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        t = self.step_count
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for p in params:
                if p not in self.state:
                    self.state[p] = {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
            m = [self.state[p]["exp_avg"] for p in params]
            v = [self.state[p]["exp_avg_sq"] for p in params]
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            if wd:
                torch._foreach_mul_(params, 1 - lr * wd)
            torch._foreach_lerp_(m, grads, 1 - b1)  # m + (1 - b1)(g - m) = b1 m + (1 - b1) g
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, 1 - b2)
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, math.sqrt(1 - b2**t))
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, m, denom, -lr / (1 - b1**t))

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._params():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def state_dict(self) -> Dict[str, Any]:
        """Moments by parameter index (the order of the groups), hyper-parameters, step."""
        index = {p: i for i, p in enumerate(self._params())}
        return {
            "step": self.step_count,
            "state": {index[p]: {k: v.clone() for k, v in s.items()} for p, s in self.state.items()},
            "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups],
        }

    def load_state_dict(self, saved: Dict[str, Any]) -> None:
        params = self._params()
        if len(saved["param_groups"]) != len(self.param_groups) or any(i >= len(params) for i in saved["state"]):
            raise ValueError("the saved optimizer state is for different parameters")
        self.step_count = int(saved["step"])
        for group, hyper in zip(self.param_groups, saved["param_groups"]):
            group.update({k: (tuple(v) if k == "betas" else v) for k, v in hyper.items()})
        self.state = {}
        for i, s in saved["state"].items():
            p = params[int(i)]
            if any(v.shape != p.shape for v in s.values()):
                raise ValueError("the saved optimizer state is for different parameters")
            self.state[p] = {k: v.to(device=p.device, dtype=p.dtype) for k, v in s.items()}
