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


# ---------------------------------------------------------------- ScratchTokenizer vs the HF wrapper


def hf_bpe(texts, vocab_size: int, max_len: int):
    """The ORACLE: the scratch BPE as train_bpe built it before ScratchTokenizer, wrapped in
    PreTrainedTokenizerFast (the BPE trainer is deterministic, so it is the same BPE)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=tokenizers.UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=tokenizers.SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer, length=len(texts))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=tokenizers.PAD,
        bos_token=tokenizers.BOS,
        eos_token=tokenizers.EOS,
        unk_token=tokenizers.UNK,
        mask_token=tokenizers.MASK,
        model_max_length=max_len,
    )


# Punctuation, spacing, non-ASCII and empty texts: whatever the byte-level BPE and its
# decoder might treat differently from the HF wrapper.
ODD = ["The movie was fun .", "it 's  bad , isn't it ?", "naïve café — 5★", "", "  lead\tand\ntrail  ", "word " * 80]


def assert_same_tokenizer(ours, oracle):
    assert isinstance(ours, tokenizers.ScratchTokenizer)
    assert tokenizers.fingerprint(ours) == tokenizers.fingerprint(oracle)
    assert len(ours) == len(oracle)
    assert ours.model_max_length == oracle.model_max_length
    assert ours.special_tokens_map == oracle.special_tokens_map
    for role in ("pad", "bos", "eos", "unk", "mask", "cls", "sep"):
        assert getattr(ours, f"{role}_token_id") == getattr(oracle, f"{role}_token_id"), role
        assert getattr(ours, f"{role}_token") == getattr(oracle, f"{role}_token"), role
    assert tokenizers.frame_ids(ours) == tokenizers.frame_ids(oracle)


def test_scratch_tokenizer_matches_the_hf_wrapper():
    texts = train_texts()
    ours, oracle = tokenizers.train_bpe(texts, 300, 512), hf_bpe(texts, 300, 512)
    assert_same_tokenizer(ours, oracle)
    sample = texts[:40] + ODD
    for max_len in (3, 4, 8, 16, 64, 512, 10_000):  # 10_000: capped at model_max_length
        assert tokenizers.encode(ours, sample, max_len) == tokenizers.encode(oracle, sample, max_len), max_len
        assert tokenizers.encode_windows(ours, sample, max_len) == tokenizers.encode_windows(oracle, sample, max_len)
    want = oracle(sample, add_special_tokens=False)["input_ids"]
    assert ours(sample, add_special_tokens=False) == {"input_ids": want}
    assert ours(ODD[0])["input_ids"] == oracle(ODD[0])["input_ids"]  # one text, specials added (none)
    ids = oracle(sample, add_special_tokens=False)["input_ids"]
    for x in ids + [[1, *ids[0], 2, 0, 4]]:
        assert ours.decode(x) == oracle.decode(x)
        assert ours.decode(x, skip_special_tokens=True) == oracle.decode(x, skip_special_tokens=True)
    tokens = [*tokenizers.SPECIALS, "Ġmovie", "not-a-token"]
    assert ours.convert_tokens_to_ids(tokens) == oracle.convert_tokens_to_ids(tokens)
    assert ours.convert_tokens_to_ids("<mask>") == oracle.convert_tokens_to_ids("<mask>") == 4
    # The HF wrapper left truncation set on its backend; ours never touches its backend.
    assert tokenizers.fingerprint(ours) == tokenizers.fingerprint(oracle)
    assert ours.backend_tokenizer.truncation is None


def test_saved_scratch_tokenizer_loads_without_and_with_transformers(tmp_path):
    from transformers import AutoTokenizer

    texts = train_texts()
    ours, oracle = tokenizers.train_bpe(texts, 300, 64), hf_bpe(texts, 300, 64)
    tokenizers.save(ours, str(tmp_path / "ours"))
    oracle.save_pretrained(str(tmp_path / "hf"))
    # The tokenizer itself is byte for byte what save_pretrained writes.
    assert (tmp_path / "ours" / "tokenizer.json").read_bytes() == (tmp_path / "hf" / "tokenizer.json").read_bytes()
    again = tokenizers.load(str(tmp_path / "ours"))
    assert_same_tokenizer(again, oracle)
    # HF tools still read the checkpoint's tokenizer, and read it as the HF wrapper.
    hf_again = AutoTokenizer.from_pretrained(str(tmp_path / "ours"))
    assert tokenizers.fingerprint(hf_again) == tokenizers.fingerprint(oracle)
    assert hf_again.special_tokens_map == oracle.special_tokens_map
    assert hf_again.model_max_length == 64
    sample = texts[:40] + ODD
    for max_len in (4, 16, 64):
        want = tokenizers.encode(oracle, sample, max_len)
        assert tokenizers.encode(again, sample, max_len) == want
        assert tokenizers.encode(hf_again, sample, max_len) == want
    # A folder without the marker (an HF init's, or a checkpoint from before the
    # marker) still loads through AutoTokenizer.
    old = tokenizers.load(str(tmp_path / "hf"))
    assert not isinstance(old, tokenizers.ScratchTokenizer)
    assert tokenizers.fingerprint(old) == tokenizers.fingerprint(oracle)


def test_scratch_tokenizer_path_never_imports_transformers(tmp_path):
    """The point of ScratchTokenizer: a from-scratch job's tokenizer costs no transformers import."""
    code = (
        "import sys; from remote import tokenizer as t;"
        "texts = ['The movie was great, I loved it.', 'Dull and far too long.'] * 20;"
        "tok = t.train_bpe(texts, 300, 32); ids = t.encode(tok, texts, 32); t.encode_windows(tok, texts, 8);"
        f"t.save(tok, {str(tmp_path)!r}); again = t.load({str(tmp_path)!r});"
        "assert t.encode(again, texts, 32) == ids and t.fingerprint(again) == t.fingerprint(tok);"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)}
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
