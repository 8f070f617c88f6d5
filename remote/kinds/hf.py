"""Helpers for the kinds' Hugging Face inits (ar and classifier from a hub name or an HF folder)."""

from __future__ import annotations

import importlib.util

import torch
import transformers

from remote.errors import JobError

# transformers renamed from_pretrained's torch_dtype to dtype in 4.56 (hosts may run 4.40+).
_DTYPE_KW = "dtype" if tuple(int(x) for x in transformers.__version__.split(".")[:2]) >= (4, 56) else "torch_dtype"


def _is_attn_error(e: Exception) -> bool:
    text = str(e).lower()
    return "attn" in text or "attention" in text


def attn_implementation(spec) -> str:
    """model.attention -> the transformers attn_implementation name.

    "auto" is SDPA: with bf16 on sm80+ torch's SDPA already dispatches to
    FlashAttention-2 / memory-efficient kernels, and it needs no extra package.
    "flash" uses the flash-attn package when it is installed, else falls back to SDPA
    (flash-attn must never be required).
    """
    if spec.attention == "flash":
        if importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
        print("model.attention=flash: flash-attn is not installed here, using SDPA")
    return "sdpa"


def from_pretrained(auto_cls, name_or_path: str, spec, **kwargs):
    """Load an HF model, asking for SDPA (falling back to eager where unsupported).

    Dropout and sizes are the checkpoint's own; ModelSpec's shape is for scratch only.
    Weights load in fp32 whatever dtype they were saved in: they are the optimizer's
    master weights, and bf16 enters only through autocast.
    """
    kwargs.setdefault(_DTYPE_KW, torch.float32)
    try:
        try:
            return auto_cls.from_pretrained(name_or_path, attn_implementation=attn_implementation(spec), **kwargs)
        except (ValueError, ImportError) as e:  # "... does not support an attention implementation ..."
            if not _is_attn_error(e):
                raise
            return auto_cls.from_pretrained(name_or_path, **kwargs)
    except OSError as e:  # no internet, unknown name, incomplete folder
        raise JobError(f"cannot load model {name_or_path!r}: {e}") from None


def fit_vocab(model, tokenizer) -> None:
    """Grow the embeddings when the tokenizer gained tokens (pad/mask added to an HF init)."""
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    if tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
