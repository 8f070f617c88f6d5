"""remote/tokenizer.py: the scratch BPE is deterministic (every class job must build the
same one), round-trips through save/load, and frames + truncates texts."""

from __future__ import annotations

import subprocess
import sys

import pytest
from runkit import ROOT, TINY

from remote import tokenizer as tokenizers
from remote.data import load_splits
from remote.spec import DataSpec


def train_texts():
    return [e.text for e in load_splits(DataSpec(path=str(TINY)), log=lambda m: None).train]


@pytest.mark.slow
def test_bpe_is_deterministic_within_and_across_processes():
    texts = train_texts()
    a = tokenizers.fingerprint(tokenizers.train_bpe(texts, 300, 64))
    b = tokenizers.fingerprint(tokenizers.train_bpe(texts, 300, 64))
    assert a == b
    # Another process (another hash seed, another thread schedule), as in another job.
    code = (
        "import sys; sys.path.insert(0, 'tests/remote');"
        "from test_tokenizer import train_texts; from remote import tokenizer as t;"
        "print(t.fingerprint(t.train_bpe(train_texts(), 300, 64)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123", "RAYON_NUM_THREADS": "1"},
    )
    assert out.stdout.strip().splitlines()[-1] == a


def test_specials_framing_truncation_and_save_load(tmp_path):
    tok = tokenizers.train_bpe(train_texts(), 300, 16)
    assert [tok.convert_tokens_to_ids(t) for t in tokenizers.SPECIALS] == [0, 1, 2, 3, 4]
    assert (tok.pad_token, tok.bos_token, tok.eos_token, tok.mask_token) == ("<pad>", "<s>", "</s>", "<mask>")
    short, long = tokenizers.encode(tok, ["The movie was fun.", "word " * 100], 16)
    assert short[0] == tok.bos_token_id and short[-1] == tok.eos_token_id
    assert tok.decode(short[1:-1]) == "The movie was fun."
    assert len(long) == 16 and long[-1] == tok.eos_token_id
    tokenizers.save(tok, str(tmp_path))
    again = tokenizers.load(str(tmp_path))
    assert tokenizers.fingerprint(again) == tokenizers.fingerprint(tok)
    assert tokenizers.encode(again, ["The movie was fun."], 16) == [short]


def test_pretrain_windows_cover_long_texts_without_cutting():
    tok = tokenizers.train_bpe(train_texts(), 300, 16)
    text = " ".join(train_texts()[:3])
    n = len(tok(text, add_special_tokens=False)["input_ids"])
    windows = tokenizers.encode_windows(tok, [text, "Short."], 16)
    assert all(len(w) <= 16 for w in windows)
    assert windows[0][0] == tok.bos_token_id and windows[-2][-1] == tok.eos_token_id
    assert windows[-1] == tokenizers.encode(tok, ["Short."], 16)[0]
    long = windows[:-1]
    assert len(long) == -(-(n + 2) // 16)  # ceil: every token is in some window
    joined = long[0] + [t for w in long[1:-1] for t in w]
    overlap = 16 * (len(long) - 1) - (n + 2 - 16)  # the last window overlaps the one before
    framed = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert joined + long[-1][overlap:] == framed


def test_fingerprint_ignores_call_settings():
    tok = tokenizers.train_bpe(train_texts(), 300, 16)
    before = tokenizers.fingerprint(tok)
    tokenizers.encode(tok, ["The movie was fun."], 8)  # sets truncation on the backend
    assert tokenizers.fingerprint(tok) == before
