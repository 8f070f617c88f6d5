"""The joint scoring job of an adaptive-draws MDLM run (``score.mdlm_draws: adaptive``).

The class jobs only train; this job (role ``score``, planned after all of them) loads
every class model's ``ckpt/final/`` and scores in rounds, all in this one process
(docs/ADAPTIVE_DRAWS.md):

- round r gives each open text ``score.adaptive.round`` more draws, its masks from a seed
  of (text id, score.seed, r) alone (``round_seed``), and scores that same masked batch
  under every class model: common random numbers by construction;
- a text is settled once the paired |margin| between its two leading classes is more than
  ``z`` paired standard errors (``settled``), and stops at ``max`` draws anyway;
- the rounds go on with the open texts only, until none is left.

It writes ``scores.jsonl`` as a classifier job does (one row per text per class), each row
with every draw the text got, so the controller's merge, paired SE and Monte Carlo
interval read it like a fixed-K run's; the manifest's ``adaptive`` says what it spent.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Dict, List, Sequence

from remote.data import load_splits
from remote.errors import JobError
from remote.files import append_jsonl, atomic_write_jsonl, stable_seed
from remote.score import text_seed


def round_seed(text_id: str, score_seed: int, r: int) -> int:
    """The seed of text ``text_id``'s draws in round ``r`` (from 0).  Round 0 keeps the seed
    a fixed-K run uses, so round 0 is exactly fixed K = ``round`` scoring."""
    return text_seed(text_id, score_seed) if r == 0 else stable_seed("score", text_id, score_seed, r)


def settled(draws: Sequence[Sequence[float]], log_prior: Sequence[float], z: float) -> bool:
    """Whether a text's decision is settled: ``draws[c]`` its per-draw NLL estimates under
    class c (draw j the same masked copy in every class).  The margin between the two
    leading classes is the mean over j of the per-draw difference, its paired SE their
    sample standard deviation / sqrt(k) (as orchestrator/results/metrics.paired_margin_se);
    settled when |margin| > z SE.  z is a stopping rule: the evaluation's "not significant"
    is |margin| <= t SE, Student's t at the text's draws - 1 d.f. (metrics.decision_critical)."""
    k = len(draws[0])
    if k < 2:
        return False
    score = [lp - math.fsum(d) / k for d, lp in zip(draws, log_prior)]
    a, b = sorted(range(len(score)), key=lambda c: -score[c])[:2]
    diff = [db - da for da, db in zip(draws[a], draws[b])]  # per draw: score_a - score_b, less the prior
    mean = math.fsum(diff) / k
    se = math.sqrt(math.fsum((d - mean) ** 2 for d in diff) / (k - 1) / k)
    return abs(score[a] - score[b]) > z * se


def log_prior(splits, mode: str) -> List[float]:
    """The log prior the evaluation adds (eval.prior): uniform, or the training frequencies."""
    classes = splits.classes
    if mode != "train":
        return [-math.log(len(classes))] * len(classes)
    counts = [len(splits.train_of(c)) for c in classes]
    return [math.log(n / sum(counts)) if n else -math.inf for n in counts]


def load_class_models(job, kind, classes: Sequence[str]):
    """(models in ``classes`` order, tokenizer): every class job's ``ckpt/final/``, which
    must all hold the same tokenizer (the masks depend on a text's token count)."""
    from remote import checkpoint
    from remote import tokenizer as tokenizers

    by_label = {str(j.get("label")): name for name, j in job.jobs.items() if j.get("role") == "class"}
    missing = [c for c in classes if c not in by_label]
    if missing:
        raise JobError(f"job {job.name!r}: no class job for class(es) {missing} in run.yaml")
    models, tok, first = [], None, None
    for c in classes:
        folder = checkpoint.final_dir(os.path.join(job.run_dir, "jobs", by_label[c]))
        checkpoint.read_info(folder)  # a clear error when that job has not finished
        model, t = checkpoint.load_final(folder, kind, job.exp.model)
        if tok is None:
            tok, first = t, tokenizers.fingerprint(t)
        elif tokenizers.fingerprint(t) != first:
            raise JobError(
                f"job {job.name!r}: class jobs {by_label[classes[0]]!r} and {by_label[c]!r} saved different "
                "tokenizers; every class model must read a text as the same tokens (train the tokenizer once: "
                "a pretrain job)"
            )
        models.append(model)
    return models, tok


def score_rounds(
    models: Sequence[Any],
    kind,
    ids: List[List[int]],
    text_ids: List[str],
    score_spec,
    tokenizer,
    prior: Sequence[float],
    *,
    dtype: str,
    job_dir: str,
    compile: bool = False,
    log=print,
) -> Dict[str, Any]:
    """The rounds: {"draws": [text][class] -> per-draw estimates, "tokens": [text],
    "rounds", "forward_passes"} (forward passes: masked copies run through a model)."""
    from remote.score import score_texts

    ad = score_spec.adaptive
    n, n_classes = len(ids), len(models)
    draws: List[List[List[float]]] = [[[] for _ in models] for _ in range(n)]
    tokens = [0] * n
    open_ = list(range(n))
    passes = 0
    scored_tokens = 0  # token positions run through a model, for tokens_per_s
    device = next(models[0].parameters()).device.type if models else "cpu"  # for the progress lines
    r = 0
    t0 = time.time()
    while open_:
        size = min(ad.round, ad.max - len(draws[open_[0]][0]))  # every open text has had every round
        spec = dataclasses.replace(score_spec, mdlm_draws=size)
        batch_ids, batch_tids = [ids[i] for i in open_], [text_ids[i] for i in open_]
        for c, model in enumerate(models):
            results = score_texts(
                model,
                kind,
                batch_ids,
                batch_tids,
                spec,
                tokenizer,
                dtype=dtype,
                job_dir=job_dir,
                compile=compile,
                log=log,
                seed_of=lambda tid, r=r: round_seed(tid, score_spec.seed, r),
                pass_of_many=f"round {r + 1}, class model {c + 1}/{n_classes}: ",
            )
            for i, (_, n_tok, _, d) in zip(open_, results):
                draws[i][c].extend(float(x) for x in d)
                tokens[i] = int(n_tok)
        passes += size * len(open_) * n_classes
        scored_tokens += sum(len(x) for x in batch_ids) * size * n_classes
        r += 1
        still = [i for i in open_ if len(draws[i][0]) < ad.max and not settled(draws[i], prior, ad.z)]
        elapsed = time.time() - t0
        append_jsonl(
            os.path.join(job_dir, "progress.jsonl"),
            {
                "t": time.time(),
                "phase": "score",
                "step": n - len(still),  # texts done
                "total": n,
                "loss": None,
                "tokens_per_s": round(scored_tokens / max(elapsed, 1e-9), 1),
                "eta_s": None,
                "device": device,
            },
        )
        log(
            f"round {r}: {len(open_)} open text(s) scored with {size} more draws by {n_classes} class models; "
            f"{len(open_) - len(still)} settled or at max, {len(still)} still open"
        )
        open_ = still
    return {"draws": draws, "tokens": tokens, "rounds": r, "forward_passes": passes}


def score_rows(test, classes: Sequence[str], draws, tokens) -> List[Dict[str, Any]]:
    """scores.jsonl rows: one per text per class, ``nll`` the mean of the text's draws, ``se``
    their standard error (null with one draw), ``draws`` all of them."""
    rows = []
    for e, per_class, n_tok in zip(test, draws, tokens):
        for c, d in zip(classes, per_class):
            k = len(d)
            mean = math.fsum(d) / k
            se = math.sqrt(math.fsum((x - mean) ** 2 for x in d) / (k - 1) / k) if k > 1 else None
            rows.append(
                {"id": e.id, "label": e.label, "class": c, "nll": mean, "tokens": n_tok, "se": se, "draws": list(d)}
            )
    return rows


def draw_stats(draws, forward_passes: int, rounds: int, spec) -> Dict[str, Any]:
    """The manifest's ``adaptive``: the settings and what the rounds spent."""
    per_text = [len(d[0]) for d in draws]
    return {
        "round": spec.round,
        "max": spec.max,
        "z": spec.z,
        "rounds": rounds,
        "forward_passes": forward_passes,
        "draws_total": sum(per_text),
        "draws_mean": sum(per_text) / max(len(per_text), 1),
        "draws_min": min(per_text, default=0),
        "draws_max": max(per_text, default=0),
        "at_max": sum(k >= spec.max for k in per_text),
    }


def run_score(job, encoder, log=print) -> Dict[str, Any]:
    """Role ``score``: load every class model, score the test texts in rounds, write
    scores.jsonl.  ``encoder``: run_job's (kind -> its encode function)."""
    from remote import tokenizer as tokenizers
    from remote.kinds import get_kind
    from remote.train import resolve_device

    exp = job.exp
    if not exp.score.is_adaptive:
        raise JobError(f"job {job.name!r} has role score, which only runs with score.mdlm_draws: adaptive")
    splits = load_splits(exp.data, log=log)
    kind = get_kind(exp.model.kind)
    models, tok = load_class_models(job, kind, splits.classes)
    device = resolve_device(exp.train.device)
    for model in models:
        model.to(device)
    prior = log_prior(splits, exp.eval.prior)
    t0 = time.time()
    ids = encoder(kind)(tok, [e.text for e in splits.test], exp.model.max_len)
    ad = exp.score.adaptive
    log(
        f"adaptive draws, {len(splits.test)} test texts, {len(models)} class models:"
        f" round {ad.round}, max {ad.max}, z {ad.z}"
    )
    out = score_rounds(
        models,
        kind,
        ids,
        [e.id for e in splits.test],
        exp.score,
        tok,
        prior,
        dtype=exp.train.dtype,
        job_dir=job.dir,
        compile=exp.train.compile,
        log=log,
    )
    score_s = round(time.time() - t0, 3)
    rows = score_rows(splits.test, splits.classes, out["draws"], out["tokens"])
    atomic_write_jsonl(os.path.join(job.dir, "scores.jsonl"), rows)
    stats = draw_stats(out["draws"], out["forward_passes"], out["rounds"], exp.score.adaptive)
    log(
        f"{stats['rounds']} rounds, {stats['draws_mean']:.1f} draws per text on average "
        f"({stats['at_max']} at max {stats['max']}), {stats['forward_passes']} forward passes in {score_s:.1f}s"
    )
    return {
        "files": ["scores.jsonl"],
        "n_test": len(splits.test),
        "classes": splits.classes,
        "timings": {"train_s": 0.0, "score_s": score_s},
        "tokenizer_sha256": tokenizers.fingerprint(tok),
        "device": device.type,
        "adaptive": stats,
    }
