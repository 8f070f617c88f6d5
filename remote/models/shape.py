"""Checks shared by the from-scratch transformers (gpt.py, bidir.py)."""

from __future__ import annotations

ATTENTION_CHOICES = ("auto", "sdpa", "flash")  # model.attention


def check_shape(n_embd: int, n_head: int, attention: str) -> None:
    """ValueError unless the heads split the width and the attention choice is known."""
    if n_embd % n_head:
        raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
    if attention not in ATTENTION_CHOICES:
        raise ValueError(f"attention must be one of {ATTENTION_CHOICES}, got {attention!r}")
