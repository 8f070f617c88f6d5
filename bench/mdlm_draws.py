"""How noisy are a finished MDLM run's decisions, and what would adaptive draws save?

Loads the class models of a run made with ``--host local`` (``.orch/local/runs/RUN``, or
``--host-runs DIR`` for another workdir's runs/) and rescores its test texts:

    python bench/mdlm_draws.py reseed RUN --draws 8 --seeds 6
        re-scores with SEEDS score seeds: accuracy per seed, how many decisions flip, and
        whether the paired SE of the first seed (the one `orch eval` reports) flagged them
    python bench/mdlm_draws.py adaptive RUN --round 4 --max 64 --z 2
        simulates adaptive draws (docs/ADAPTIVE_DRAWS.md): rounds of ROUND draws, each
        its own stratified set with its own seed, the same masks for every class; after
        each round only texts with paired |margin| / SE < Z get another, up to MAX.
        Prints the accuracy of fixed K = 1, 2, 4, ... next to the adaptive one and its
        draws per text.

A round's draws are made by scoring with score.seed = 1000 + round (a text's seed depends
only on its id and score.seed, so every class model sees the same masks).  CPU is fine
for the smoke-sized runs; torch threads = --threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(run_dir: str):
    import torch  # noqa: F401
    import yaml

    from remote import checkpoint
    from remote import tokenizer as tokenizers
    from remote.data import load_splits
    from remote.kinds import get_kind
    from remote.spec import load_experiment

    doc = yaml.safe_load(open(os.path.join(run_dir, "run.yaml")))
    exp = load_experiment(doc["experiment"], "run.yaml")
    kind = get_kind("mdlm")
    splits = load_splits(exp.data, log=lambda _: None)
    models, tok = [], None
    labels = {j["label"]: j["name"] for j in doc["jobs"] if j.get("role") == "class"}
    for c in splits.classes:
        folder = os.path.join(run_dir, "jobs", labels[c], "ckpt", "final")
        model, tok = checkpoint.load_final(folder, kind, exp.model)
        models.append(model.eval())
    ids = tokenizers.encode(tok, [e.text for e in splits.test], exp.model.max_len)
    y = np.array([splits.classes.index(e.label) for e in splits.test])
    return exp, kind, models, tok, ids, [e.id for e in splits.test], y


def draws_for(exp, kind, models, tok, ids, tids, k: int, seed: int) -> np.ndarray:
    """(n, C, k) per-draw NELBO estimates, scored with score.seed = SEED."""
    from remote.score import score_texts

    spec = dataclasses.replace(exp.score, seed=seed, mdlm_draws=k)
    res = [score_texts(m, kind, ids, tids, spec, tok, dtype="fp32", job_dir="/tmp", log=lambda _: None) for m in models]
    return np.stack([np.array([r[3] for r in rc]) for rc in res], axis=1)


def reseed(args, loaded) -> None:
    from orchestrator.results.metrics import Z95, margin, paired_margin_se

    exp, kind, models, tok, ids, tids, y = loaded
    margins, ses, preds = [], [], []
    for s in range(args.seeds):
        d = draws_for(exp, kind, models, tok, ids, tids, args.draws, 1000 + s)
        score = -d.mean(axis=2)
        margins.append(margin(score))
        ses.append(paired_margin_se(score, d))
        preds.append(np.argmax(score, axis=1))
    margins, ses, preds = np.array(margins), np.array(ses), np.array(preds)
    flipped = (preds != preds[0]).any(axis=0)
    flagged = np.abs(margins[0]) <= Z95 * ses[0]
    print(
        f"K={args.draws}, {args.seeds} seeds, n={len(y)}: accuracy per seed "
        f"{np.round((preds == y).mean(axis=1), 4).tolist()}"
    )
    print(
        f"decisions that flip across seeds: {flipped.sum()} ({flipped.mean():.1%}); flagged not significant "
        f"by the first seed: {flagged.sum()}, of which {(flipped & flagged).sum()} flipped; unflagged that "
        f"flipped: {(flipped & ~flagged).sum()} of {(~flagged).sum()}"
    )
    print(
        f"mean paired SE of the margin {ses.mean():.3f} nats; sd of the margin over seeds "
        f"{margins.std(axis=0, ddof=1).mean():.3f}"
    )


def adaptive(args, loaded) -> None:
    from orchestrator.results.metrics import margin, paired_margin_se

    exp, kind, models, tok, ids, tids, y = loaded
    rounds = args.max // args.round
    d = np.concatenate(
        [draws_for(exp, kind, models, tok, ids, tids, args.round, 1000 + r) for r in range(rounds)], axis=2
    )  # (n, C, max)

    def accuracy(draws):
        return float(np.mean(np.argmax(-draws.mean(axis=2), axis=1) == y))

    n = len(y)
    print(f"n={n}, {len(models)} classes, rounds of {args.round} draws, max {args.max}, z {args.z}")
    k = 1
    while k <= args.max:
        print(f"fixed K={k:4d}: accuracy {accuracy(d[:, :, :k]):.4f}")
        k *= 2
    used = np.full(n, args.round)
    open_ = np.ones(n, dtype=bool)
    for r in range(1, rounds):
        part = d[:, :, : args.round * r]
        score = -part.mean(axis=2)
        open_ &= np.abs(margin(score)) < args.z * paired_margin_se(score, part)
        used[open_] += args.round
    final = np.array([np.argmax(-d[i, :, : used[i]].mean(axis=1)) for i in range(n)])
    print(
        f"adaptive: accuracy {np.mean(final == y):.4f} with {used.mean():.2f} draws per text on average "
        f"({used.mean() / args.max:.1%} of fixed K={args.max}); {np.mean(used == args.max):.1%} of texts reached max"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["reseed", "adaptive"])
    ap.add_argument("run")
    ap.add_argument("--host-runs", default=".orch/local/runs", help="the host's runs/ folder")
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--round", type=int, default=4)
    ap.add_argument("--max", type=int, default=64)
    ap.add_argument("--z", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    loaded = load(os.path.join(args.host_runs, args.run))
    (reseed if args.what == "reseed" else adaptive)(args, loaded)


if __name__ == "__main__":
    main()
