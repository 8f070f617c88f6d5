"""Tokenizers: a byte-level BPE trained from scratch, or the init model's own.

Classification compares NLLs across class models, so **every class job of a run must
use the same tokenizer** (a different vocabulary changes the token count and the NLL).
For a from-scratch run each class job trains the BPE itself on the *whole* training
split (all classes, in the split's deterministic order); the `tokenizers` BPE trainer
is deterministic for identical input (checked by tests/remote/test_tokenizer.py), so
the jobs agree without having to wait for one another.  With a pretrain stage the
tokenizer is trained once on the pretrain texts and saved with its checkpoint.

The scratch BPE is a ``ScratchTokenizer``, a thin wrapper over the ``tokenizers``
library, so a from-scratch job never imports transformers (~1.5 s of CPU at start-up,
more than half of what torch costs).  It behaves like the PreTrainedTokenizerFast it
replaces for everything remote/ uses (same ids, same fingerprint), and ``save`` writes
the files ``save_pretrained`` writes, so ``AutoTokenizer`` still loads a checkpoint's
tokenizer.  Tokenizers of HF inits stay transformers tokenizers, imported only when
one is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, List, Optional, Sequence, Union

from remote.errors import JobError

PAD, BOS, EOS, UNK, MASK = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
SPECIALS = [PAD, BOS, EOS, UNK, MASK]  # ids 0..4 in a scratch tokenizer
# Written next to a saved scratch tokenizer: ``load`` rebuilds a ScratchTokenizer from
# such a folder without transformers; HF tools ignore the file.
MARKER = "orch_tokenizer.json"
_ROLES = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token")


class ScratchTokenizer:
    """The scratch BPE as remote/ uses a tokenizer, without transformers.

    Mirrors PreTrainedTokenizerFast for the attributes and calls remote/ and its tests
    use: the special tokens and their ids (no cls/sep), ``len``, ``model_max_length``,
    ``special_tokens_map``, ``backend_tokenizer``, ``__call__`` with ``truncation`` and
    ``max_length``, ``convert_tokens_to_ids``, ``decode`` and ``save_pretrained``.
    tests/remote/test_tokenizer.py checks each against PreTrainedTokenizerFast.
    """

    cls_token = sep_token = None
    cls_token_id = sep_token_id = None

    def __init__(self, backend, model_max_length: int, specials: Optional[Dict[str, str]] = None) -> None:
        self.backend_tokenizer = backend
        self.model_max_length = model_max_length
        specials = specials or dict(zip(_ROLES, (BOS, EOS, UNK, PAD, MASK)))
        for role in _ROLES:
            token = specials.get(role)
            setattr(self, role, token)
            setattr(self, f"{role}_id", None if token is None else backend.token_to_id(token))

    @property
    def special_tokens_map(self) -> Dict[str, str]:
        return {role: getattr(self, role) for role in _ROLES if getattr(self, role) is not None}

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def __call__(
        self,
        text: Union[str, Sequence[str]],
        add_special_tokens: bool = True,
        truncation: bool = False,
        max_length: Optional[int] = None,
    ) -> Dict[str, list]:
        """``{"input_ids": ...}`` for one text or a list (encoded in parallel, in Rust).

        Truncation keeps the first ``max_length`` tokens, what the fast tokenizer's
        right-side truncation gives for a single sequence; slicing here rather than
        enabling it on the backend leaves the backend's state (and the fingerprint)
        untouched.
        """
        limit = (self.model_max_length if max_length is None else max_length) if truncation else None
        single = isinstance(text, str)
        backend = self.backend_tokenizer
        # encode_batch_fast (newer tokenizers releases) skips the character offsets nobody here
        # reads: 1.8x faster on IMDB reviews; older hosts get encode_batch.
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        encodings = encode([text] if single else list(text), add_special_tokens=add_special_tokens)
        ids = [e.ids if limit is None else e.ids[:limit] for e in encodings]
        return {"input_ids": ids[0] if single else ids}

    def convert_tokens_to_ids(self, tokens: Union[str, Sequence[str]]):
        def one(token: str) -> Optional[int]:
            i = self.backend_tokenizer.token_to_id(token)
            return self.unk_token_id if i is None else i

        return one(tokens) if isinstance(tokens, str) else [one(t) for t in tokens]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.backend_tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def save_pretrained(self, folder: str) -> None:
        """The files transformers' ``save_pretrained`` writes, plus the MARKER.

        ``tokenizer_class`` is PreTrainedTokenizerFast, the class every transformers
        version has for a bare tokenizer.json (v5 calls it TokenizersBackend and saves
        that name, which v4 does not know); special_tokens_map.json is what v4 writes.
        """
        os.makedirs(folder, exist_ok=True)
        self.backend_tokenizer.save(os.path.join(folder, "tokenizer.json"))
        config = {
            "backend": "tokenizers",
            **self.special_tokens_map,
            "model_max_length": self.model_max_length,
            "tokenizer_class": "PreTrainedTokenizerFast",
        }
        for name, obj in (
            ("tokenizer_config.json", config),
            ("special_tokens_map.json", self.special_tokens_map),
            (MARKER, {"class": "ScratchTokenizer"}),
        ):
            with open(os.path.join(folder, name), "w") as f:
                json.dump(obj, f, indent=2, sort_keys=True)
                f.write("\n")

    @classmethod
    def from_folder(cls, folder: str) -> "ScratchTokenizer":
        from tokenizers import Tokenizer

        with open(os.path.join(folder, "tokenizer_config.json")) as f:
            config = json.load(f)
        backend = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        return cls(backend, int(config["model_max_length"]), {r: config.get(r) for r in _ROLES})


def train_bpe(texts: Sequence[str], vocab_size: int, max_len: int) -> ScratchTokenizer:
    """A GPT-2 style byte-level BPE (no unknown characters) with our special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

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
    # The no-op template PreTrainedTokenizerFast sets when it wraps a tokenizer
    # (transformers 5): set here too, the fingerprint and the saved tokenizer.json are
    # those the HF-wrapped BPE had.  It adds nothing: encode frames texts itself.
    tok.post_processor = processors.TemplateProcessing(single="$A", pair="$A:0 $B:1", special_tokens=[])
    return ScratchTokenizer(tok, max_len)


def from_pretrained(name_or_path: str, masked: bool):
    """The init's tokenizer, with a pad token (and a mask token for masked kinds) added if missing.

    Adding a token grows the vocabulary: ``kinds.*.build_model`` resizes the embeddings.
    """
    from transformers import AutoTokenizer

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
    """A scratch tokenizer (MARKER in the folder) without transformers, else AutoTokenizer's.

    Checkpoints written before the MARKER existed load through AutoTokenizer as before.
    """
    if os.path.isfile(os.path.join(folder, MARKER)):
        return ScratchTokenizer.from_folder(folder)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)
