"""Fixtures shared by the remote/ tests (helpers that are not fixtures: runkit.py)."""

from __future__ import annotations

import pytest
from runkit import REVIEWS


@pytest.fixture
def one_thread():
    """torch on one thread for the test (results must not depend on the thread count)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok():
    """A scratch BPE trained on REVIEWS."""
    from remote import tokenizer as tokenizers

    return tokenizers.train_bpe(REVIEWS * 5, 300, 32)
