"""A GPT-2 in plain torch: the ``ar`` kind's from-scratch model.

Why not ``transformers.GPT2LMHeadModel``: importing it costs ~6 s of CPU on a small host
(torch itself ~3 s), paid by every job before its first step; a smoke job spent more
than half its wall time there.  The architecture is GPT-2's, module for module (pre-LN
blocks, learned positions, tanh-GELU MLP, LM head tied to the token embedding,
LayerNorm eps 1e-5, N(0, 0.02) init with the residual projections scaled by
1/sqrt(2 n_layer)), so the numbers are the same: tests/remote/test_gpt.py copies the
weights of a Hugging Face GPT-2 into this model (:func:`load_hf_state_dict`) and
checks the logits against it.  Hugging Face models are still used for pretrained
inits (``model.init: gpt2``, a local HF folder).

Padding is on the right (remote.train.collate), so causal attention alone keeps every
real position from seeing a pad: no padding mask is needed, and SDPA can take its
``is_causal`` fast path (FlashAttention on a GPU).  Logits at pad positions are
computed but never read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from remote.errors import JobError
from remote.models.shape import check_shape

try:  # optional: the flash-attn package (model.attention: flash); never required
    from flash_attn import flash_attn_func as _flash_attn_func
except Exception:  # ImportError, or a broken build raising OSError/RuntimeError on import
    _flash_attn_func = None

_warned_no_flash = False


@dataclass
class GPTConfig:
    vocab_size: int
    n_positions: int = 128
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 2
    dropout: float = 0.0
    attention: str = "auto"  # auto / sdpa: torch SDPA; flash: flash-attn when installed

    def __post_init__(self) -> None:
        check_shape(self.n_embd, self.n_head, self.attention)


def _use_flash(q: torch.Tensor, attention: str) -> bool:
    global _warned_no_flash
    if attention != "flash":
        return False  # auto: SDPA already dispatches to FlashAttention kernels on a GPU
    if _flash_attn_func is None:
        if not _warned_no_flash:
            print("gpt: model.attention=flash but flash-attn is not importable; using torch SDPA", file=sys.stderr)
            _warned_no_flash = True
        return False
    return q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.attention = cfg.attention
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.attn_dropout = cfg.dropout
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        q, k, v = self.c_attn(x).view(B, L, 3, self.n_head, C // self.n_head).unbind(dim=2)
        dropout_p = self.attn_dropout if self.training else 0.0
        if _use_flash(q, self.attention):  # flash-attn takes [B, L, H, D]
            y = _flash_attn_func(q, k, v, dropout_p, causal=True)
        else:
            y = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), dropout_p=dropout_p, is_causal=True
            ).transpose(1, 2)
        return self.resid_dropout(self.c_proj(y.reshape(B, L, C)))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=1e-5)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=1e-5)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """``forward(input_ids [B, L], attention_mask=None) -> logits [B, L, V]``.

    ``attention_mask`` is accepted for the kinds' common call and not needed: padding
    is on the right (see the module docstring).
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=1e-5)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as GPT-2's
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for name, p in self.named_parameters():  # residual projections: variance kept flat with depth
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))

    def hidden(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The final (layer-normed) hidden states, [B, L, n_embd]."""
        L = input_ids.shape[1]
        if L > self.config.n_positions:
            raise ValueError(f"{L} tokens, but the model has {self.config.n_positions} positions")
        pos = torch.arange(L, device=input_ids.device)
        x = self.drop(self.wte(input_ids) + self.wpe(pos))
        for block in self.h:
            x = block(x)
        return self.ln_f(x)

    def forward(self, input_ids: torch.Tensor, attention_mask=None) -> torch.Tensor:
        return self.lm_head(self.hidden(input_ids))


class GPTClassifier(nn.Module):
    """GPT-2 with a sequence-classification head, as ``GPT2ForSequenceClassification``:
    a bias-free linear layer on the hidden state of the last real token (``</s>``, which
    under causal attention has seen the whole text).  ``forward`` -> logits [B, labels]."""

    def __init__(self, cfg: GPTConfig, num_labels: int) -> None:
        super().__init__()
        self.config = cfg
        self.num_labels = num_labels
        self.transformer = GPT(cfg)
        self.score = nn.Linear(cfg.n_embd, num_labels, bias=False)
        nn.init.normal_(self.score.weight, mean=0.0, std=0.02)

    def forward(self, input_ids: torch.Tensor, attention_mask=None) -> torch.Tensor:
        h = self.transformer.hidden(input_ids)
        if attention_mask is None:
            last = torch.full((h.shape[0],), h.shape[1] - 1, device=h.device)
        else:  # right padding: the last real token is at length - 1
            last = attention_mask.sum(dim=1) - 1
        return self.score(h[torch.arange(h.shape[0], device=h.device), last])


# Hugging Face's GPT-2 stores these four as Conv1D, whose weight is the transpose of nn.Linear's.
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def load_hf_state_dict(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Load the weights of a Hugging Face ``GPT2LMHeadModel`` (into :class:`GPT`) or
    ``GPT2ForSequenceClassification`` (into :class:`GPTClassifier`), its ``state_dict()``."""
    nested = isinstance(model, GPTClassifier)
    ours = {}
    for key, value in state.items():
        if key.endswith(("attn.bias", "attn.masked_bias")) and value.dim() > 1:
            continue  # old versions' causal-mask buffers
        if not nested:
            key = key.removeprefix("transformer.")
        ours[key] = value.t() if key.endswith(_CONV1D) else value
    wte = "transformer.wte.weight" if nested else "wte.weight"
    ours.setdefault(wte.replace("wte", "lm_head"), ours[wte])
    model.load_state_dict(ours)


# ------------------------------------------------------------------ checkpoints ----
SAVED_CONFIG = "gpt.json"  # in a checkpoint folder: the shape (else the folder is Hugging Face's)


def config_for(spec, vocab_size: int, n_positions: int, **shape) -> GPTConfig:
    """A GPTConfig: the shape from ModelSpec (or a checkpoint's ``shape``), the run-time
    choices (dropout, attention) always from ModelSpec."""
    fields = {"n_layer": spec.n_layer, "n_embd": spec.n_embd, "n_head": spec.n_head, **shape}
    try:
        return GPTConfig(vocab_size, n_positions, dropout=spec.dropout, attention=spec.attention, **fields)
    except (TypeError, ValueError) as e:
        raise JobError(f"model: {e}") from None


def scratch_config(spec, tokenizer) -> GPTConfig:
    """ModelSpec's shape, sized to the tokenizer (positions capped at what it accepts)."""
    from remote.tokenizer import effective_max_len

    return config_for(spec, len(tokenizer), effective_max_len(tokenizer, spec.max_len))


def logits_of(out) -> torch.Tensor:
    """The logits of a forward pass: this module's models return them, HF models an output object."""
    return out if isinstance(out, torch.Tensor) else out.logits


def save(model: nn.Module, folder: str) -> None:
    """``gpt.json`` (the shape; + num_labels for a classifier) and ``model.pt``; a Hugging
    Face model (a pretrained init's) with its own ``save_pretrained``."""
    if not isinstance(model, (GPT, GPTClassifier)):
        model.save_pretrained(folder)
        return
    shape: Dict[str, Any] = {
        k: v for k, v in dataclasses.asdict(model.config).items() if k not in ("dropout", "attention")
    }
    if isinstance(model, GPTClassifier):
        shape["num_labels"] = model.num_labels
    with open(os.path.join(folder, SAVED_CONFIG), "w", encoding="utf-8") as f:
        json.dump(shape, f, indent=1)
    torch.save(model.state_dict(), os.path.join(folder, "model.pt"))


def saved_shape(folder: str, vocab_size: int) -> Optional[Dict[str, Any]]:
    """The shape :func:`save` wrote (checked against the tokenizer), or None for an HF folder."""
    path = os.path.join(folder, SAVED_CONFIG)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        shape = json.load(f)
    if shape.get("vocab_size") != vocab_size:
        raise JobError(f"{folder}: checkpoint vocabulary {shape.get('vocab_size')} != tokenizer's {vocab_size}")
    return shape


def saved_state(folder: str) -> Dict[str, torch.Tensor]:
    return torch.load(os.path.join(folder, "model.pt"), map_location="cpu")
