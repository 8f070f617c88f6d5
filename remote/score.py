"""Scoring: every test text under one trained model, batched and length-bucketed.

Texts are sorted by length (longest first, so an out-of-memory shows up at once, not
at the end) and cut into batches of ``score.batch_size``; results go back to the test
order.  Each text gets a seed that depends only on (text id, score.seed): masked kinds
draw their masks from it, so every class model sees the same draws for a text
("common random numbers") and the class difference is not drowned in sampling noise.
"""

from __future__ import annotations

import os
import time
from typing import Callable, List, Optional, Tuple

import torch

from remote.files import append_jsonl, stable_seed
from remote.train import autocast, collate, compiled


def text_seed(text_id: str, score_seed: int) -> int:
    return stable_seed("score", text_id, score_seed)


def score_texts(
    model,
    kind,
    ids: List[List[int]],
    text_ids: List[str],
    score_spec,
    tokenizer,
    *,
    dtype: str,
    job_dir: str,
    compile: bool = False,
    log: Callable[[str], None] = print,
    seed_of: Optional[Callable[[str], int]] = None,
    pass_of_many: str = "",
) -> List[Tuple]:
    """[(nll, tokens, se, draws)] in the order of ``ids`` (draws: the per-draw estimates of
    a kind that makes them, else None); progress lines with phase "score".

    ``compile``: run through torch.compile with dynamic shapes (every batch has its own
    length, so static shapes would recompile per batch): the whole scoring function for
    kinds that trace whole (see ``remote.train.compiled``), else the model.

    ``seed_of``: a text id -> its seed (default ``text_seed`` with ``score.seed``; the rounds
    of adaptive draws give each round its own).

    ``pass_of_many``: this call is one pass of a caller that makes many (which writes the
    progress lines itself); the text names the pass in the log, which still says how far
    the pass is: a round of 5k IMDB texts is minutes on a CPU.
    """
    if seed_of is None:
        seed_of = lambda text_id: text_seed(text_id, score_spec.seed)  # noqa: E731
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    results: List[Tuple] = [None] * len(ids)  # type: ignore[list-item]
    progress_path = os.path.join(job_dir, "progress.jsonl")
    n_batches = -(-len(order) // score_spec.batch_size)
    every = max(1, n_batches // 20)  # about 20 progress lines per scoring pass
    t0 = time.time()
    model.eval()
    score_fn, fwd = compiled(kind.score_batch, kind, model, compile, dynamic=True)
    with torch.inference_mode():
        for b, start in enumerate(range(0, len(order), score_spec.batch_size)):
            idx = order[start : start + score_spec.batch_size]
            input_ids, attention_mask = collate([ids[i] for i in idx], pad_id, device)
            seeds = [seed_of(text_ids[i]) for i in idx]
            with autocast(device, dtype):
                out = score_fn(fwd, input_ids, attention_mask, seeds, score_spec, tokenizer)
            nll, tokens, se = out[:3]
            draws = out[3] if len(out) > 3 else None
            for j, i in enumerate(idx):
                results[i] = (nll[j], tokens[j], se[j], None if draws is None else draws[j])
            done = start + len(idx)
            if (b + 1) % every == 0 or done == len(order):
                elapsed = time.time() - t0
                log(f"{pass_of_many}score {done}/{len(order)} texts, {done / max(elapsed, 1e-9):.1f} texts/s")
                if pass_of_many:
                    continue
                row = {
                    "t": time.time(),
                    "phase": "score",
                    "step": done,
                    "total": len(order),
                    "loss": None,
                    "tokens_per_s": round(sum(len(ids[i]) for i in order[:done]) / max(elapsed, 1e-9), 1),
                    "eta_s": round(elapsed / done * (len(order) - done), 1),
                    "device": device.type,
                }
                append_jsonl(progress_path, row)
    return results
