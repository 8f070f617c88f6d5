"""Masked-LM backbones shared by the ``mdlm`` and ``mlm-pll`` kinds, behind one call.

Every backbone is wrapped in :class:`MaskedLM`, whose ``forward(input_ids,
attention_mask, select=None)`` returns logits -- ``[B, L, V]``, or ``[N, V]`` for the
N positions where the boolean ``select`` is true -- whatever sits inside:

- ``bidir``: the from-scratch DiT-style transformer of :mod:`remote.models.bidir`;
- ``hf-head``: a Hugging Face masked LM whose prediction head is one module applied
  to the encoder's hidden states (RoBERTa/XLM-R family ``lm_head``, BERT ``cls``), so
  the head -- a ``hidden x vocab`` matmul, the most expensive op at scoring time --
  runs only on the selected positions;
- ``hf``: any other ``AutoModelForMaskedLM`` (full logits, then selected);
- ``hf-nomask``: a remote-code model whose forward takes no attention mask
  (``kuleshov-group/mdlm-owt``).  Pads are then attended, as in the reference code,
  so callers must batch only equal-length rows at scoring time (see
  ``supports_padding_mask``).  Training and the validation loss (remote/train.py) do not:
  their length-bucketed batches are padded to the longest row, and in this mode the
  shorter rows' real tokens attend to those pads (the loss still counts real tokens
  only).  Batching training by exact length would change the step plan for one init, so
  it is left as it is: fine-tuning such a model learns with some pads in view, and the
  less its batches' lengths vary (the bucketing keeps them close) the less that matters.

The wrapper also carries what the losses need but ``train_loss`` is not given: the
mask token id and the ids of the special tokens that are never masked nor scored.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from remote.errors import JobError

from .bidir import BidirConfig, BidirTransformer, flash_attn_available  # noqa: F401

# Hub repos whose models ship their own modelling code (loaded with trust_remote_code).
REMOTE_CODE_PREFIXES = ("kuleshov-group/",)
# Position tables of these families are offset by padding_idx + 1 (RoBERTa quirk).
_OFFSET_POSITION_FAMILIES = ("roberta", "xlm-roberta", "camembert", "longformer")


def special_token_ids(tokenizer) -> list[int]:
    """Ids that are structure, not text: never masked by the diffusion, never scored.

    <s>/</s> (or [CLS]/[SEP]) sit at fixed places and would be predicted for free;
    excluding them makes ``tokens`` the number of text tokens, the same for MDLM and
    PLL.  [MASK] and pad are excluded so a target can never be the mask token.
    """
    ids = {
        getattr(tokenizer, name, None)
        for name in ("pad_token_id", "mask_token_id", "bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id")
    }
    return sorted(i for i in ids if i is not None)


class MaskedLM(nn.Module):
    def __init__(self, net: nn.Module, mode: str, mask_token_id: int, special_ids: list[int], vocab_size: int) -> None:
        super().__init__()
        if mode not in ("bidir", "hf-head", "hf", "hf-nomask"):
            raise ValueError(f"unknown masked-LM mode {mode!r}")
        self.net = net
        self.mode = mode
        self.mask_token_id = int(mask_token_id)
        self.vocab_size = int(vocab_size)  # len(tokenizer): ids the data can hold
        # Buffers (not saved in the state dict) so they follow .to(device).
        self.register_buffer("special_ids", torch.tensor(special_ids, dtype=torch.long), persistent=False)
        self.register_buffer("mask_index", torch.tensor([self.mask_token_id], dtype=torch.long), persistent=False)

    @property
    def supports_padding_mask(self) -> bool:
        return self.mode != "hf-nomask"

    def content_mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """True at text tokens: not padding and not a special token."""
        special = self.special_ids.to(input_ids.device)
        return attention_mask.bool() & ~torch.isin(input_ids, special)

    def forward(self, input_ids, attention_mask=None, select=None):
        if self.mode == "bidir":
            return self.net(input_ids, attention_mask, select=select)
        if self.mode == "hf-head":
            out = self.net.base_model(input_ids=input_ids, attention_mask=attention_mask)
            hidden = out[0]
            if select is not None:
                hidden = hidden[select]
            return self._head(hidden)
        if self.mode == "hf":
            logits = self.net(input_ids=input_ids, attention_mask=attention_mask).logits
        else:  # hf-nomask
            out = self.net(input_ids=input_ids)
            logits = out.logits if hasattr(out, "logits") else (out[0] if isinstance(out, tuple) else out)
        return logits[select] if select is not None else logits

    @property
    def _head(self) -> nn.Module:
        head = getattr(self.net, "lm_head", None)
        return head if head is not None else self.net.cls


def masked_token_nll(model: MaskedLM, input_ids, attention_mask, select, targets) -> torch.Tensor:
    """-log p(target | input) at the ``select`` positions (row-major order), in fp32.

    SUBS / "never predict [MASK]": the mask logit is set to -inf before the softmax,
    so probability is shared only among real tokens.  The log-softmax runs in fp32
    even when the network ran under bf16 autocast.
    """
    logits = model(input_ids, attention_mask, select=select).float()
    logits = logits.index_fill(-1, model.mask_index, float("-inf"))
    return F.cross_entropy(logits, targets, reduction="none")


def _needs_remote_code(pretrained: str) -> bool:
    """True for checkpoints that bring their own modelling code (``auto_map``)."""
    if os.path.isdir(pretrained):
        cfg = os.path.join(pretrained, "config.json")
        if os.path.exists(cfg):
            with open(cfg, encoding="utf-8") as f:
                return "auto_map" in json.load(f)
        return False
    return pretrained.startswith(REMOTE_CODE_PREFIXES)


def _load_hf(pretrained: str, tokenizer, spec):
    from transformers import AutoModelForMaskedLM

    from remote.kinds.hf import fit_vocab, from_pretrained

    remote = _needs_remote_code(pretrained)
    kwargs = {"trust_remote_code": True} if remote else {}
    net = from_pretrained(AutoModelForMaskedLM, pretrained, spec, **kwargs)
    net = net.float()  # fp32 master weights even if the remote code ignores dtype=
    config = net.config
    if getattr(config, "model_type", "") == "mdlm":
        # kuleshov-group/mdlm-owt: GPT-2's 50257 tokens + its trained [MASK] at id
        # 50257.  A tokenizer that put its mask elsewhere, or added tokens (a new
        # pad), would feed the network an untrained embedding as its "mask".
        V = config.vocab_size
        if tokenizer.mask_token_id != V - 1 or len(tokenizer) != V:
            raise JobError(
                f"{pretrained}: needs a tokenizer of exactly {V} tokens with the mask token"
                f" at id {V - 1} (GPT-2 + [MASK]; use an existing token such as"
                f" <|endoftext|> as pad); got {len(tokenizer)} tokens, mask id"
                f" {tokenizer.mask_token_id}"
            )
    position_pad = getattr(config, "pad_token_id", None)  # before fit_vocab rewrites it
    fit_vocab(net, tokenizer)

    # The encoder caps texts at min(model.max_len, tokenizer.model_max_length); a
    # longer text than the position table would crash (or silently wrap) mid-job.
    from remote.tokenizer import effective_max_len

    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "model_length", None)
    max_len = effective_max_len(tokenizer, spec.max_len)
    if limit is not None:
        if getattr(config, "model_type", "") in _OFFSET_POSITION_FAMILIES:
            limit -= (position_pad if position_pad is not None else 1) + 1
        if max_len > limit:
            raise JobError(f"model.max_len={max_len} exceeds what {pretrained} supports ({limit} tokens)")

    if "attention_mask" not in inspect.signature(net.forward).parameters:
        mode = "hf-nomask"
    elif isinstance(getattr(net, "lm_head", None), nn.Module) or isinstance(getattr(net, "cls", None), nn.Module):
        mode = "hf-head"
    else:
        mode = "hf"
    return net, mode


def build_masked_lm(spec, tokenizer, pretrained: Optional[str]) -> MaskedLM:
    """The backbone for a ``mdlm`` / ``mlm-pll`` job.

    ``pretrained`` is a Hugging Face name or local HF folder, or None for the
    from-scratch transformer sized by ``spec`` (a ``ModelSpec``).
    """
    if tokenizer.mask_token_id is None:
        raise JobError("model.kind mdlm / mlm-pll needs a tokenizer with a mask token")
    if pretrained is None:
        try:
            cfg = BidirConfig(
                vocab_size=len(tokenizer),
                n_layer=spec.n_layer,
                n_embd=spec.n_embd,
                n_head=spec.n_head,
                max_len=spec.max_len,
                dropout=spec.dropout,
                attention=spec.attention,
            )
        except ValueError as e:
            raise JobError(f"model: {e}") from None
        net, mode = BidirTransformer(cfg), "bidir"
    else:
        net, mode = _load_hf(pretrained, tokenizer, spec)
    return MaskedLM(net, mode, tokenizer.mask_token_id, special_token_ids(tokenizer), len(tokenizer))


SAVED_META = "masked_lm.json"


def save_masked_lm(model: MaskedLM, folder: str) -> None:
    """A self-contained checkpoint: reloading needs neither the hub nor the init."""
    meta = {"mode": model.mode}
    if model.mode == "bidir":
        meta["config"] = dataclasses.asdict(model.net.config)
        torch.save(model.net.state_dict(), os.path.join(folder, "model.pt"))
    else:
        model.net.save_pretrained(folder)
    with open(os.path.join(folder, SAVED_META), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)


def load_masked_lm(spec, tokenizer, folder: str) -> MaskedLM:
    """Inverse of :func:`save_masked_lm`.  The architecture is the checkpoint's; the
    run-time choices (attention implementation, dropout) are ``spec``'s."""
    with open(os.path.join(folder, SAVED_META), encoding="utf-8") as f:
        meta = json.load(f)
    if meta["mode"] == "bidir":
        cfg = BidirConfig(**{**meta["config"], "attention": spec.attention, "dropout": spec.dropout})
        if cfg.vocab_size != len(tokenizer):
            raise JobError(f"{folder}: checkpoint vocabulary {cfg.vocab_size} != tokenizer's {len(tokenizer)}")
        net, mode = BidirTransformer(cfg), "bidir"
        net.load_state_dict(torch.load(os.path.join(folder, "model.pt"), map_location="cpu"))
    else:
        net, mode = _load_hf(folder, tokenizer, spec)
    return MaskedLM(net, mode, tokenizer.mask_token_id, special_token_ids(tokenizer), len(tokenizer))


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def sum_masked_nll(
    model: MaskedLM, lengths: torch.Tensor, build: Callable, batch_size: int, active: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Per-row sums of -log p(target | masked input) over R masked copies of texts.

    The rows (every masked copy of every text of a scoring batch) are never held in
    memory all at once: ``build(rows, width)`` makes the rows with the given indices,
    cut to ``width`` tokens, on the model's device, and returns
    ``(inputs, attention_mask, select, targets)``, each ``[len(rows), width]``.
    ``lengths`` (``[R]``, CPU) are the rows' unpadded lengths; rows are run
    ``batch_size`` at a time, each chunk as wide as its longest row.  Rows where
    ``active`` is false (nothing masked) cost no forward pass and sum to 0.  For a
    backbone that cannot take a padding mask, a chunk holds rows of one length only,
    so nothing is ever padded.  Returns float64 sums of shape ``[R]`` on the CPU.
    """
    R = len(lengths)
    todo = torch.arange(R) if active is None else active.nonzero(as_tuple=True)[0]
    if not model.supports_padding_mask:
        todo = todo[torch.argsort(lengths[todo], stable=True)]
    chunks, start = [], 0
    while start < len(todo):
        stop = min(start + batch_size, len(todo))
        if not model.supports_padding_mask:  # cut where the length changes
            same = (lengths[todo[start:stop]] == lengths[todo[start]]).nonzero(as_tuple=True)[0]
            stop = start + int(same[-1]) + 1
        chunks.append(todo[start:stop])
        start = stop

    device = model_device(model)
    totals = torch.zeros(R, dtype=torch.float64, device=device)
    for rows in chunks:
        inputs, attention_mask, select, targets = build(rows, int(lengths[rows].max()))
        nll = masked_token_nll(model, inputs, attention_mask, select, targets[select])
        row_of = rows.to(device)[select.nonzero(as_tuple=True)[0]]  # the row of each scored position
        totals.index_add_(0, row_of, nll.double())
    return totals.cpu()
