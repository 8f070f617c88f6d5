"""How noisy are a finished MDLM run's decisions, and what would adaptive draws save?

Loads the class models of a run made with ``--host local`` (``.orch/local/runs/RUN``, or
``--host-runs DIR`` for another workdir's runs/) and rescores its test texts:

    python bench/mdlm_draws.py reseed RUN --draws 8 --seeds 6
        re-scores with SEEDS score seeds: accuracy per seed, how many decisions flip, and
        whether the paired SE of the first seed (the one `orch eval` reports) flagged them
    python bench/mdlm_draws.py adaptive RUN --round 4 --max 64 --z 2 3 [--plot curve.png]
        accuracy and forward passes of fixed K = 1, 2, 4, ..., MAX (each scored as a run
        with score.mdlm_draws = K, the run's score.seed) against adaptive draws for each
        Z, run by the score job's own code (remote/adaptive.py: score_rounds), as a
        markdown table; --plot draws accuracy against forward passes.

reseed's draws are made by scoring with score.seed = 1000 + seed (a text's seed depends
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


def ties(tids, c: int) -> np.ndarray:
    """The evaluation's tie coin (metrics.tie_keys): with one draw at mdlm_stratify t a text
    can score the same under every class, and argmax would hand every such text to class 0."""
    from orchestrator.results.metrics import tie_keys

    return tie_keys(tids, c)


def draws_for(exp, kind, models, tok, ids, tids, k: int, seed: int) -> np.ndarray:
    """(n, C, k) per-draw NELBO estimates, scored with score.seed = SEED."""
    from remote.score import score_texts

    spec = dataclasses.replace(exp.score, seed=seed, mdlm_draws=k)
    res = [score_texts(m, kind, ids, tids, spec, tok, dtype="fp32", job_dir="/tmp", log=lambda _: None) for m in models]
    return np.stack([np.array([r[3] for r in rc]) for rc in res], axis=1)


def reseed(args, loaded) -> None:
    from orchestrator.results.metrics import decision_critical, draws_per_text, margin, paired_margin_se, predict

    exp, kind, models, tok, ids, tids, y = loaded
    keys = ties(tids, len(models))
    margins, ses, preds, crits = [], [], [], []
    for s in range(args.seeds):
        d = draws_for(exp, kind, models, tok, ids, tids, args.draws, 1000 + s)
        score = -d.mean(axis=2)
        margins.append(margin(score))
        ses.append(paired_margin_se(score, d))
        crits.append(decision_critical(draws_per_text(d)))
        preds.append(predict(score, keys))
    margins, ses, preds = np.array(margins), np.array(ses), np.array(preds)
    flipped = (preds != preds[0]).any(axis=0)
    flagged = np.abs(margins[0]) <= crits[0] * ses[0]  # the evaluation's rule (metrics.not_significant)
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
    """Fixed K = 1, 2, 4, ..., max (each scored as a run with score.mdlm_draws = K would) against
    the real adaptive rounds (remote/adaptive.py) for each --z: accuracy and forward passes."""
    from orchestrator.results.metrics import predict
    from remote import adaptive as rounds
    from remote.spec import AdaptiveSpec

    exp, kind, models, tok, ids, tids, y = loaded
    n, c = len(y), len(models)
    keys = ties(tids, c)
    prior = np.array(rounds.log_prior(loaded_splits(exp), exp.eval.prior))
    print(f"n={n}, {c} classes, prior {exp.eval.prior}; adaptive rounds of {args.round}, max {args.max}")
    print("| scoring | accuracy | draws per text | forward passes | share of fixed K = max |")
    print("|---|---|---|---|---|")
    points = {"fixed": [], "adaptive": []}
    k = 1
    while True:
        d = draws_for(exp, kind, models, tok, ids, tids, k, exp.score.seed)
        acc = float(np.mean(predict(-d.mean(axis=2) + prior, keys) == y))
        points["fixed"].append((k, acc, n * c * k))
        print(f"| fixed K = {k} | {acc:.2%} | {k} | {n * c * k} | {k / args.max:.1%} |")
        if k >= args.max:
            break
        k = min(2 * k, args.max)
    for z in args.z:
        spec = dataclasses.replace(
            exp.score, mdlm_draws="adaptive", adaptive=AdaptiveSpec(round=args.round, max=args.max, z=z)
        )
        out = rounds.score_rounds(
            models, kind, ids, tids, spec, tok, list(prior), dtype="fp32", job_dir="/tmp", log=lambda _: None
        )
        nll = np.array([[np.mean(dc) for dc in dt] for dt in out["draws"]])
        acc = float(np.mean(predict(-nll + prior, keys) == y))
        per_text = np.array([len(dt[0]) for dt in out["draws"]])
        points["adaptive"].append((z, acc, out["forward_passes"]))
        print(
            f"| adaptive, round {args.round}, max {args.max}, z {z:g} | {acc:.2%} | {per_text.mean():.1f} "
            f"({np.mean(per_text >= args.max):.1%} of texts reach max) | {out['forward_passes']} "
            f"| {out['forward_passes'] / (n * c * args.max):.1%} |"
        )
    if args.plot:
        plot(points, args, args.plot)


def loaded_splits(exp):
    from remote.data import load_splits

    return load_splits(exp.data, log=lambda _: None)


def plot(points, args, path: str) -> None:
    """Accuracy against forward passes: the fixed-K curve and the adaptive points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    k, acc, passes = zip(*points["fixed"])
    ax.plot(passes, acc, "o-", label="fixed K")
    for kk, a, p in points["fixed"]:
        ax.annotate(f"K={kk}", (p, a), textcoords="offset points", xytext=(4, -10), fontsize=7)
    for z, a, p in points["adaptive"]:
        ax.plot([p], [a], "s", label=f"adaptive z={z:g}")
    ax.set_xscale("log")
    ax.set_xlabel("forward passes (class models x draws, all test texts)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"fixed K vs adaptive draws (round {args.round}, max {args.max})")
    ax.grid(linewidth=0.5, alpha=0.5)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["reseed", "adaptive"])
    ap.add_argument("run")
    ap.add_argument("--host-runs", default=".orch/local/runs", help="the host's runs/ folder")
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--round", type=int, default=4)
    ap.add_argument("--max", type=int, default=64)
    ap.add_argument("--z", type=float, nargs="+", default=[2.0], help="adaptive: one or more stop rules")
    ap.add_argument("--plot", default="", help="adaptive: draw accuracy against forward passes into this PNG")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    loaded = load(os.path.join(args.host_runs, args.run))
    (reseed if args.what == "reseed" else adaptive)(args, loaded)


if __name__ == "__main__":
    main()
