"""Tokenizers: a byte-level BPE trained from scratch, or the init model's own.

Classification compares NLLs across class models, so **every class job of a run must
use the same tokenizer** (a different vocabulary changes the token count and the NLL).
For a from-scratch run each class job trains the BPE itself on the *whole* training
split (all classes, in the split's deterministic order); the `tokenizers` BPE trainer
is deterministic for identical input (checked by tests/remote/test_tokenizer.py), so
the jobs agree without having to wait for one another.  With a pretrain stage the
tokenizer is trained once on the pretrain texts and saved with its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import List, Sequence

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from remote.errors import JobError

PAD, BOS, EOS, UNK, MASK = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
SPECIALS = [PAD, BOS, EOS, UNK, MASK]  # ids 0..4 in a scratch tokenizer


def train_bpe(texts: Sequence[str], vocab_size: int, max_len: int) -> PreTrainedTokenizerFast:
    """A GPT-2 style byte-level BPE (no unknown characters) with our special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIALS,
        # All 256 byte symbols up front, so any text encodes even if a byte is unseen.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer, length=len(texts))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        mask_token=MASK,
        model_max_length=max_len,
    )


def from_pretrained(name_or_path: str, masked: bool):
    """The init's tokenizer, with a pad token (and a mask token for masked kinds) added if missing.

    Adding a token grows the vocabulary: ``kinds.*.build_model`` resizes the embeddings.
    """
    try:
        tok = AutoTokenizer.from_pretrained(name_or_path)
    except Exception as e:  # no internet, unknown name, not a folder
        raise JobError(f"cannot load the tokenizer of {name_or_path!r}: {e}") from None
    extra = {}
    if tok.pad_token is None:
        extra["pad_token"] = PAD
    if masked and tok.mask_token is None:
        extra["mask_token"] = MASK
    if extra:
        tok.add_special_tokens(extra)
    return tok


def fingerprint(tokenizer) -> str:
    """sha256 of the vocabulary + merges: equal fingerprints mean equal tokenization."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        # Truncation/padding are per-call settings the fast tokenizer remembers, not
        # part of what a token is.
        state.pop("truncation", None)
        state.pop("padding", None)
        blob = json.dumps(state, sort_keys=True)
    else:
        blob = json.dumps(sorted(tokenizer.get_vocab().items()))
    specials = json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str)
    return hashlib.sha256((blob + specials).encode()).hexdigest()


def frame_ids(tokenizer):
    """(first, last) token ids put around every text: <s>/</s>, or what the init uses instead.

    GPT-2 has one <|endoftext|> token that serves as both; BERT-style tokenizers have
    [CLS]/[SEP] instead of bos/eos.
    """
    first = tokenizer.bos_token_id
    if first is None:
        first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.eos_token_id
    last = tokenizer.eos_token_id
    if last is None:
        last = tokenizer.sep_token_id
    if first is None or last is None:
        raise ValueError("the tokenizer has neither bos/eos nor cls/sep tokens to frame a text")
    return first, last


def effective_max_len(tokenizer, max_len: int) -> int:
    """model.max_len, but never more than the init model accepts (e.g. 512 for RoBERTa)."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 2 < limit < 1_000_000:  # HF uses a huge int for "unknown"
        return min(max_len, limit)
    return max_len


def encode(tokenizer, texts: Sequence[str], max_len: int) -> List[List[int]]:
    """``[first] + text tokens + [last]``, the text truncated so the whole is <= max_len.

    Truncation keeps the beginning of the text; the same cut applies under every class
    model, so the NLLs stay comparable.
    """
    first, last = frame_ids(tokenizer)
    max_len = effective_max_len(tokenizer, max_len)
    out: List[List[int]] = []
    step = 4096  # the fast tokenizer encodes a list in parallel; chunks bound memory
    for i in range(0, len(texts), step):
        enc = tokenizer(list(texts[i : i + step]), add_special_tokens=False, truncation=True, max_length=max_len - 2)[
            "input_ids"
        ]
        out.extend([first] + ids + [last] for ids in enc)
    return out


def encode_windows(tokenizer, texts: Sequence[str], max_len: int) -> List[List[int]]:
    """Like ``encode`` but a long text becomes several windows instead of being cut.

    For pretraining, where every token of the unlabelled text is worth learning from
    (14% of IMDB reviews exceed 512 tokens); class training and scoring keep ``encode``.
    The windows are slices of the framed text ``[first] + tokens + [last]``, so only the
    real start carries <s> and only the real end </s>; the last window overlaps the one
    before rather than being a short stub.
    """
    first, last = frame_ids(tokenizer)
    width = effective_max_len(tokenizer, max_len)
    out: List[List[int]] = []
    step = 4096
    for i in range(0, len(texts), step):
        enc = tokenizer(list(texts[i : i + step]), add_special_tokens=False)["input_ids"]
        for ids in enc:
            framed = [first] + ids + [last]
            starts = list(range(0, max(len(framed) - width, 0) + 1, width))
            if starts[-1] + width < len(framed):
                starts.append(len(framed) - width)
            out.extend(framed[s : s + width] for s in starts)
    return out


def save(tokenizer, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    tokenizer.save_pretrained(folder)


def load(folder: str):
    return AutoTokenizer.from_pretrained(folder)
