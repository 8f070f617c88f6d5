"""A from-scratch bidirectional (non-causal) transformer: the MDLM/DiT-style backbone.

Shape of the network (Sahoo et al. 2024, `models/dit.py`, with time conditioning off):

    token embedding -> n_layer x [pre-LN attention + pre-LN MLP(4x)] -> LN -> output head

- Positions are rotary embeddings (GPT-NeoX style, non-interleaved halves), in plain
  torch, applied to queries and keys; there is no learned position table, so the
  model runs on any length (``max_len`` only sizes the precomputed cos/sin cache).
- The output head is a separate linear layer initialised to zero (not tied to the
  embedding): every prediction starts as the uniform distribution, as in the DiT's
  final layer.
- Time conditioning (adaLN on sigma(t)) is left out.  MDLM turns it off by default
  for absorbing-state diffusion: the clean-data posterior p(x_0 | x_t) does not depend
  on t beyond what the visible mask pattern already shows, so the network gains
  nothing from seeing t (and the LLaDA k-estimator has no t at all).  With it off,
  the reference's adaLN collapses to a learned constant scale/shift per block, i.e.
  an ordinary LayerNorm affine, which is what is used here.
- Attention is non-causal WITH a key padding mask: pad tokens are never attended.
  The reference code packs every sequence as full length, so pads leak into the
  attention of real tokens and a text's score depends on how it was batched; here a
  text's outputs do not depend on the padding around it.
- Attention runs through ``F.scaled_dot_product_attention`` (FlashAttention-2 /
  memory-efficient kernels on CUDA), or through flash-attn's varlen kernel when that
  package is importable and ``attention`` allows it; flash-attn is never required.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from remote.models.shape import check_shape

try:  # optional: the compiled flash-attn extension (see notes A5)
    from flash_attn import flash_attn_varlen_qkvpacked_func as _flash_varlen_qkvpacked
except Exception:  # ImportError, or a broken build raising OSError/RuntimeError on import
    _flash_varlen_qkvpacked = None

_warned_no_flash = False


def flash_attn_available() -> bool:
    return _flash_varlen_qkvpacked is not None


@dataclass
class BidirConfig:
    vocab_size: int
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 2
    max_len: int = 128
    dropout: float = 0.0
    attention: str = "auto"  # auto | sdpa | flash
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        check_shape(self.n_embd, self.n_head, self.attention)
        if (self.n_embd // self.n_head) % 2:
            raise ValueError("rotary embeddings need an even head dimension (n_embd / n_head)")


# ----------------------------------------------------------------------- rotary ----
class Rotary(nn.Module):
    """cos/sin tables for rotary embeddings, cached up to the longest length seen."""

    def __init__(self, head_dim: int, max_len: int, base: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._cache_len = 0
        self._build(max_len)

    def _build(self, length: int) -> None:
        t = torch.arange(length, dtype=torch.float32, device=self.inv_freq.device)
        freqs = torch.outer(t, self.inv_freq)  # [L, D/2]
        emb = torch.cat([freqs, freqs], dim=-1)  # [L, D]: the two halves share frequencies
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)
        self._cache_len = length

    def forward(self, length: int):
        if length > self._cache_len:
            self._build(max(length, self._cache_len))
        return self.cos[:length], self.sin[:length]


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [B, L, H, D]; cos/sin: [L, D].  Rotation computed in fp32 for accuracy."""
    cos = cos[None, :, None, :]
    sin = sin[None, :, None, :]
    xf = x.float()
    return (xf * cos + _rotate_half(xf) * sin).to(x.dtype)


# -------------------------------------------------------------------- attention ----
class AttnMeta:
    """Per-forward attention bookkeeping, built at most once and shared by every layer
    (each costs a host-device sync, which should not be paid per layer)."""

    def __init__(self, key_mask: torch.Tensor, attention: str) -> None:
        self.key_mask = key_mask  # [B, L] bool, True at real tokens
        self.attention = attention
        self._sdpa_mask = self._varlen = None
        self._built_sdpa = False

    def use_flash(self, q: torch.Tensor) -> bool:
        global _warned_no_flash
        if self.attention == "sdpa":
            return False
        if _flash_varlen_qkvpacked is None:
            if self.attention == "flash" and not _warned_no_flash:
                print(
                    "bidir: model.attention=flash but flash-attn is not importable; using torch SDPA", file=sys.stderr
                )
                _warned_no_flash = True
            return False
        # flash-attn runs on CUDA in half precision only (bf16 under autocast).
        return q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)

    @property
    def sdpa_mask(self) -> Optional[torch.Tensor]:
        """[B, 1, 1, L] (True = may attend), or None when nothing is padded, which lets
        torch pick its FlashAttention kernel (that kernel takes no mask)."""
        if not self._built_sdpa:
            km = self.key_mask
            self._sdpa_mask = None if bool(km.all()) else km[:, None, None, :]
            self._built_sdpa = True
        return self._sdpa_mask

    @property
    def varlen(self) -> tuple:
        if self._varlen is None:
            self._varlen = _varlen_meta(self.key_mask)
        return self._varlen


def _varlen_meta(key_mask: torch.Tensor) -> tuple:
    """Unpadding indices for flash-attn's varlen kernel.  Right padding keeps every
    sequence's real tokens contiguous, so the non-pad rows of the flattened batch, in
    order, are exactly the packed layout the kernel expects."""
    seqlens = key_mask.sum(dim=1, dtype=torch.int32)
    cu_seqlens = F.pad(torch.cumsum(seqlens, 0, dtype=torch.int32), (1, 0))
    keep = key_mask.reshape(-1).nonzero(as_tuple=True)[0]
    return keep, cu_seqlens, int(seqlens.max())


def _flash_attention(q, k, v, varlen, dropout_p):
    """flash-attn varlen over the unpadded tokens.  q/k/v: [B, L, H, D]."""
    B, L, H, D = q.shape
    keep, cu_seqlens, max_seqlen = varlen
    qkv = torch.stack([q, k, v], dim=2).reshape(B * L, 3, H, D)[keep]
    out = _flash_varlen_qkvpacked(qkv, cu_seqlens, max_seqlen, dropout_p, causal=False)
    full = out.new_zeros(B * L, H, D)  # pad positions get 0: nothing reads them
    full[keep] = out
    return full.view(B, L, H, D)


class SelfAttention(nn.Module):
    def __init__(self, cfg: BidirConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.head_dim = cfg.n_embd // cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)

    def forward(self, x, cos, sin, meta: AttnMeta):
        B, L, C = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_head, self.head_dim).unbind(dim=2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        dropout_p = 0.0  # attention-probability dropout off; residual dropout is in Block
        if meta.use_flash(q):
            y = _flash_attention(q, k, v, meta.varlen, dropout_p)
        else:  # SDPA wants [B, H, L, D]
            y = F.scaled_dot_product_attention(
                q.transpose(1, 2),
                k.transpose(1, 2),
                v.transpose(1, 2),
                attn_mask=meta.sdpa_mask,
                dropout_p=dropout_p,
                is_causal=False,
            ).transpose(1, 2)
        return self.proj(y.reshape(B, L, C))


class MLP(nn.Module):
    def __init__(self, cfg: BidirConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-LN transformer block; dropout on both residual branches (as the DiT does)."""

    def __init__(self, cfg: BidirConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cos, sin, meta: AttnMeta):
        x = x + self.drop(self.attn(self.ln1(x), cos, sin, meta))
        x = x + self.drop(self.mlp(self.ln2(x)))
        return x


# ------------------------------------------------------------------------ model ----
class BidirTransformer(nn.Module):
    """forward(input_ids [B, L], attention_mask [B, L] | None, select [B, L] bool | None)

    Returns logits [B, L, V], or [N, V] for the N positions where ``select`` is true
    (the output head, the widest matmul, then runs only where a loss is needed).
    """

    def __init__(self, cfg: BidirConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.rotary = Rotary(cfg.n_embd // cfg.n_head, cfg.max_len, cfg.rope_base)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=True)
        self._init_weights()

    def _init_weights(self) -> None:
        # GPT-2 style: N(0, 0.02), residual output projections scaled by
        # 1/sqrt(2 n_layer) so the residual stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() >= 2:
                std = 0.02
                if name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                    std = 0.02 / math.sqrt(2 * self.config.n_layer)
                nn.init.normal_(p, mean=0.0, std=std)
        # Separate, zero-initialised output head: uniform predictions at step 0.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids, attention_mask=None, select=None):
        B, L = input_ids.shape
        if attention_mask is None:
            key_mask = torch.ones(B, L, dtype=torch.bool, device=input_ids.device)
        else:
            key_mask = attention_mask.bool()
            # A row with no real token (never produced by the tokenizer, which adds
            # specials) would make every attention score -inf and the softmax NaN.
            key_mask = key_mask | ~key_mask.any(dim=1, keepdim=True)
        cos, sin = self.rotary(L)
        x = self.embed(input_ids)
        meta = AttnMeta(key_mask, self.config.attention)
        for block in self.blocks:
            x = block(x, cos, sin, meta)
        x = self.ln_f(x)
        if select is not None:
            x = x[select]
        return self.head(x)
