"""Evaluate a fetched run: the per-class classifier's metrics, and the files that hold them.

The classifier: for each test text x and class c, score(c) = -nll_c(x) + log prior(c);
predict argmax_c score(c). The per-token variant divides the likelihood by the number of
tokens the class model scored, score_norm(c) = -nll_c / tokens_c + log prior(c) / n(x),
with n(x) the text's mean token count over the classes: the prior keeps its share of a
per-token log joint, and with a shared tokenizer the per-token argmax equals the raw one
(only the margin, hence ROC-AUC and calibration, changes).

:func:`evaluate` is pure (it reads the run's files, writes nothing), so ``orch compare``
reuses it without touching the run folders; :func:`evaluate_run` writes metrics.json,
predictions.csv and report.md, and the plots when asked (see :func:`evaluate_run`).
Loading and merging the scores is ``scores.py``; the metric arithmetic ``metrics.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Sequence

import numpy as np

from orchestrator.config.project import copy_of
from orchestrator.contract.records import config_edited
from orchestrator.errors import ExitCode, OrchError
from orchestrator.results import plots as plotting
from orchestrator.results import report
from orchestrator.results import yardsticks as ystk
from orchestrator.results.metrics import (
    BAND_TITLES,
    BOOTSTRAP_METHOD,
    BOOTSTRAP_SEED,
    CI_LEVEL,
    applied_to,
    bands_for,
    calibration_bins,
    classification_metrics,
    confidence_margin,
    describe_bands,
    length_buckets,
    predict,
    tie_keys,
    verdict_span,
)
from orchestrator.results.scores import RunData, load_run, load_scores, scores_digest
from orchestrator.results.scoretable import Scores, name_examples
from orchestrator.results.uncertainty import accuracy_with_mc_noise, adaptive_summary, paired_summary


def resolve_prior(run: RunData, classes: Sequence[str], mode: str) -> Dict[str, Any]:
    """{"mode", "applied", "counts", "log_prior"}: log prior per class (``classes`` order).

    ``train`` takes the class frequencies from the class jobs' manifest ``train_texts``.
    A discriminative classifier's scores are posteriors, log p(c|x), that already hold its
    training frequencies: under ``train`` nothing is added, and under ``uniform`` they are
    divided out (log p(c|x) - log p_train(c) + log(1/C), the label-shift correction for a
    calibrated classifier), p_train from the classifier job's manifest
    ``train_class_counts``; a run made before that was recorded says it could not be.
    """
    k = len(classes)
    if mode not in ("uniform", "train"):
        raise OrchError(f"eval.prior: expected 'uniform' or 'train', got {mode!r}", ExitCode.CONFIG)
    uniform = {"mode": mode, "applied": "uniform", "counts": None, "log_prior": [-math.log(k)] * k}
    if run.scoring_role == "classifier":
        if mode == "train":
            return {**uniform, "applied": "none (classifier scores are posteriors)"}
        counts = classifier_counts(run, classes)
        if counts is None:
            return {
                **uniform,
                "applied": "none: the classifier's scores carry its training class frequencies, and this run's"
                " manifest does not record them (train_class_counts), so they were not divided out",
            }
        total = sum(counts.values())
        return {
            **uniform,
            "applied": "uniform (the classifier's training class frequencies divided out)",
            "counts": counts,
            "log_prior": [-math.log(counts[c] / total) - math.log(k) for c in classes],
        }
    if mode == "uniform":
        return uniform
    counts: Dict[str, int] = {}
    for job in run.jobs:  # every class job, also where a joint score job scored (adaptive draws)
        if job.role == "class":
            counts[job.label] = (job.manifest or {}).get("train_texts")  # type: ignore[index]
    bad = [
        c for c in classes if isinstance(counts.get(c), bool) or not isinstance(counts.get(c), int) or counts[c] <= 0
    ]
    if bad:
        raise OrchError(
            f"eval.prior is 'train' but the manifests give no positive train_texts for class(es) {name_examples(bad)}",
            ExitCode.DATA,
            hint="set eval.prior: uniform, or re-run the jobs with a remote side that records train_texts",
        )
    total = sum(counts[c] for c in classes)
    return {
        "mode": mode,
        "applied": "train",
        "counts": {c: counts[c] for c in classes},
        "log_prior": [math.log(counts[c] / total) for c in classes],
    }


def classifier_counts(run: RunData, classes: Sequence[str]) -> Optional[Dict[str, int]]:
    """The classifier job's training texts per class (manifest ``train_class_counts``), or
    None when it is missing or not a positive whole count for every class (untrusted)."""
    for job in run.jobs:
        found = (job.manifest or {}).get("train_class_counts") if job.role == "classifier" else None
        if isinstance(found, dict) and all(
            isinstance(found.get(c), int) and not isinstance(found.get(c), bool) and found[c] > 0 for c in classes
        ):
            return {c: found[c] for c in classes}
    return None


def class_scores(scores: Scores, log_prior: Sequence[float], per_token: bool = False) -> np.ndarray:
    """(n, C) log-joint scores; ``per_token`` divides by the token counts (see module doc)."""
    lp = np.asarray(log_prior, dtype=float)[None, :]
    if not per_token:
        return -scores.nll + lp
    return -scores.nll / scores.tokens + lp / scores.tokens.mean(axis=1, keepdims=True)


def job_timings(run: RunData) -> Dict[str, Any]:
    """Wall time of each job (status.json started/ended), GPU time, and manifest timings."""
    jobs: Dict[str, Any] = {}
    gpu_s = wall_s = 0.0
    for job in run.jobs:
        status = job.status or {}
        manifest = job.manifest or {}
        started, ended = status.get("started"), status.get("ended")
        seconds = None
        if isinstance(started, (int, float)) and isinstance(ended, (int, float)) and ended >= started:
            seconds = float(ended - started)
            wall_s += seconds
            if job.gpu and manifest.get("device", "cuda") != "cpu":
                gpu_s += seconds
        timings = manifest.get("timings") if isinstance(manifest.get("timings"), dict) else {}
        jobs[job.name] = {
            "role": job.role,
            "label": job.label,
            "state": status.get("state", "pending"),
            "seconds": seconds,
            "gpu": job.gpu,
            "device": manifest.get("device"),
            # given a GPU that torch could not use: it ran on the CPU (remote/train.py's words)
            "device_note": manifest.get("device_note"),
            "gpu_name": manifest.get("gpu_name"),
            "train_texts": manifest.get("train_texts"),
            "train_tokens": manifest.get("train_tokens"),
            "tokens_seen": manifest.get("tokens_seen"),
            **timings,
        }
    train_tokens = sum(
        j.manifest["train_tokens"]
        for j in run.jobs
        if j.manifest
        and isinstance(j.manifest.get("train_tokens"), int)
        and not isinstance(j.manifest.get("train_tokens"), bool)
    )
    return {"jobs": jobs, "gpu_seconds": gpu_s, "wall_seconds": wall_s, "train_tokens": int(train_tokens)}


def software_facts(run: RunData) -> Dict[str, Any]:
    """Host / GPU / software facts from local.json and the manifests (first value wins)."""
    facts: Dict[str, Any] = {
        "host": run.config.get("host") or run.local.get("host"),
        "code_hash": run.config.get("code_hash"),
        "created": None if run.config.get("created") is None else str(run.config["created"]),
    }
    if run.local.get("gpus") is not None:  # written by `orch run` from the host probe
        facts["gpus"] = run.local["gpus"]
    host_facts = run.local.get("host_facts")
    if isinstance(host_facts, dict):
        facts.update(host_facts)
    for job in run.jobs:
        for key in ("device", "gpu_name", "torch", "transformers"):
            value = (job.manifest or {}).get(key)
            if value is not None:
                facts.setdefault(key, value)
    return facts


def data_facts(run: RunData) -> Dict[str, int]:
    """How the host's split treated copies of one text (the manifests' "data", see
    remote.data.duplicate_facts; the pretrain job adds the unlabelled copies it dropped).
    Untrusted: only whole counts >= 0 are taken; {} for runs made before it was recorded."""
    out: Dict[str, int] = {}
    for job in run.jobs:
        found = (job.manifest or {}).get("data")
        for key, value in found.items() if isinstance(found, dict) else ():
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0 and len(key) <= 64:
                out.setdefault(key, value)
    return out


def ids_digest(ids: Iterable[str]) -> str:
    """sha256 of the sorted test ids: two runs with the same digest scored the same texts."""
    ordered = sorted(ids)
    return hashlib.sha256(("\n".join(ordered) + "\n" if ordered else "").encode("utf-8")).hexdigest()


@dataclass
class Evaluation:
    """Everything one evaluation computed; report.py and plots.py render it."""

    run: RunData
    scores: Scores
    prior: Dict[str, Any]
    bands: str
    score: np.ndarray  # (n, C) raw log-joint
    score_norm: np.ndarray  # (n, C) per-token
    metrics: Dict[str, Any] = field(default_factory=dict)
    margin_se: Optional[np.ndarray] = None  # (n,) paired SE of each raw margin (kinds with draws)

    @cached_property
    def keys(self) -> np.ndarray:
        """The coin that breaks exact ties (metrics.tie_keys): the same wherever a text is scored."""
        return tie_keys(self.scores.ids, len(self.scores.classes))

    @cached_property
    def pred(self) -> np.ndarray:
        return predict(self.score, self.keys)

    @cached_property
    def pred_norm(self) -> np.ndarray:
        return predict(self.score_norm, self.keys)


def judge(
    run: RunData,
    bands_override: Optional[str],
    band_set: str,
    raw: Dict[str, Any],
    norm: Dict[str, Any],
    found: Optional[Dict[str, Any]],
    y: np.ndarray,
    pred: np.ndarray,
    pred_norm: np.ndarray,
    resamples: int,
) -> Dict[str, Any]:
    """The verdict, and the yardstick rows.  The bands judge only the data set they were
    written for (eval.bands_dataset; a --bands given on the command line always); any
    other data set is judged against the yardsticks.  Sets norm["verdict"] alike."""
    spec = run.experiment.eval
    dataset = ystk.run_dataset(run)
    # A run launched before the data set was named keeps being judged as it was: by the bands.
    use_bands = bands_override is not None or dataset is None or spec.bands_dataset in ("*", dataset)
    rows = ystk.rows(found, y, pred, resamples) if found and found.get("available") else []
    section = {
        "available": bool(rows),
        "reason": None if rows else (found or {}).get("reason", "not computed"),
        "rows": rows,
    }
    if rows:
        section.update({k: found.get(k) for k in ("train_texts", "seconds", "sklearn", "settings")})
    verdict = {
        "bands": band_set,
        "dataset": dataset,
        "bands_dataset": spec.bands_dataset,
        "basis": "bands" if use_bands else "yardsticks",
    }
    if use_bands:
        verdict.update(
            label=raw["verdict"],
            title=BAND_TITLES[band_set],
            applied_to=applied_to(band_set, run.experiment.model.kind),
            thresholds=describe_bands(band_set),
            span=verdict_span(raw["accuracy_ci95"], band_set),
        )
    else:
        elsewhere = f"the {band_set} bands are for {spec.bands_dataset}, this data set is {dataset}"
        verdict.update(
            label=ystk.verdict(rows),
            title="yardsticks",
            thresholds=f"a difference counts when McNemar gives p < {ystk.ALPHA}, against naive Bayes "
            f"and TF-IDF logistic regression on the same split; {elsewhere}"
            if rows
            else f"{elsewhere}, and the yardsticks were not computed ({section['reason']})",
        )
        norm["verdict"] = ystk.verdict(ystk.rows(found, y, pred_norm, 0)) if rows else verdict["label"]
    return {"verdict": verdict, "yardsticks": section}


def evaluate(
    run: RunData,
    scores: Optional[Scores] = None,
    *,
    prior: Optional[str] = None,
    bands: Optional[str] = None,
    resamples: Optional[int] = None,
    yardsticks: Optional[Dict[str, Any]] = None,
) -> Evaluation:
    """Compute every metric of a loaded run (pure: reads nothing but the run's score
    files).  ``yardsticks``: their predictions (yardsticks.predictions), None: not shown."""
    spec = run.experiment.eval
    scores = scores if scores is not None else load_scores(run)
    resamples = spec.bootstrap if resamples is None else resamples
    if resamples < 0:
        raise OrchError(f"eval.bootstrap: expected a count >= 0, got {resamples}", ExitCode.CONFIG)
    band_set = bands_for(run.experiment.model.kind, bands or spec.bands)
    prior_info = resolve_prior(run, scores.classes, prior or spec.prior)
    score = class_scores(scores, prior_info["log_prior"], per_token=False)
    score_norm = class_scores(scores, prior_info["log_prior"], per_token=True)
    ev = Evaluation(run, scores, prior_info, band_set, score, score_norm)

    raw = classification_metrics(scores.y, score, scores.classes, band_set, resamples, scores.ids)
    same = np.array_equal(ev.pred, ev.pred_norm)  # then its interval would repeat itself
    norm = classification_metrics(scores.y, score_norm, scores.classes, band_set, 0 if same else resamples, scores.ids)
    mc = accuracy_with_mc_noise(scores.y, scores.draws, prior_info["log_prior"], resamples, keys=ev.keys)
    texts_ci = raw["accuracy_ci95"]
    if mc is not None:  # the interval holds the estimator's noise too (the text-only one is kept)
        raw["accuracy_ci95"] = mc["accuracy_ci95"]
    if same:
        norm["accuracy_ci95"] = raw["accuracy_ci95"]
    length = scores.tokens.mean(axis=1)
    timings = job_timings(run)
    paired, ev.margin_se = paired_summary(score, scores.draws, scores.se)
    exp = run.experiment
    m: Dict[str, Any] = {
        "schema": 1,
        "run_id": run.run_id,
        "experiment": exp.name,
        "kind": exp.model.kind,
        "init": exp.model.init,
        "n": scores.n,
        "classes": scores.classes,
        "class_counts": dict(zip(scores.classes, np.bincount(scores.y, minlength=len(scores.classes)).tolist())),
        "positive_class": scores.classes[1] if len(scores.classes) == 2 else None,
        "prior": prior_info,
        **{k: v for k, v in raw.items() if k != "verdict"},
        **judge(run, bands, band_set, raw, norm, yardsticks, scores.y, ev.pred, ev.pred_norm, resamples),
        "per_token": norm,
        "bootstrap": {"resamples": resamples, "seed": BOOTSTRAP_SEED, "level": CI_LEVEL, "method": BOOTSTRAP_METHOD},
        "by_length": length_buckets(scores.y, {"accuracy": ev.pred, "accuracy_per_token": ev.pred_norm}, length),
        "calibration": calibration_bins(ev.pred == scores.y, confidence_margin(score)),
        "mean_tokens": float(length.mean()),
        "scored_tokens": int(scores.tokens.sum()),
        "mean_se": None if np.all(np.isnan(scores.se)) else float(np.nanmean(scores.se)),
        "paired": paired,
        "accuracy_ci95_texts": texts_ci,
        "mc_noise": mc,
        "adaptive": (
            adaptive_summary(scores.draws, exp.score.adaptive, scores.y, prior_info["log_prior"], ev.keys)
            if exp.score.is_adaptive
            else None
        ),
        "timings": timings,
        "gpu_seconds": timings["gpu_seconds"],
        "train_tokens": timings["train_tokens"],
        "facts": software_facts(run),
        "data": data_facts(run),
        "min_accuracy": spec.min_accuracy,
        "meets_min_accuracy": raw["accuracy"] >= spec.min_accuracy,
        # run.yaml edited here after launch: the report's config is not what the jobs ran
        "config_edited": config_edited(run.run_dir, run.local),
        # a copy of another run's folder (cp -r runs/A runs/B): evaluated as B, its record is A's
        "copy_of": copy_of(run.run_dir),
        "test_ids_sha256": ids_digest(scores.ids),
        "tokenizer_sha256": scores.tokenizer_sha256,
    }
    if m["adaptive"] is not None:
        m["adaptive"]["prior_note"] = adaptive_prior_note(exp.eval.prior, prior_info["mode"])
    ev.metrics = m
    return ev


def adaptive_prior_note(settled_under: str, evaluated_under: str) -> Optional[str]:
    """What to say when an adaptive-draws run is evaluated under another prior than the
    one its host stopped the draws under (remote/adaptive.py settles a text's decision with
    the run's eval.prior): None when they agree."""
    if settled_under == evaluated_under:
        return None
    return (
        f"the adaptive draws were stopped under the run's eval.prior {settled_under!r}: a text's decision was"
        f" settled under that prior, not under {evaluated_under!r}, so texts close to this prior's decision"
        " may have stopped too early"
    )


def check_min_accuracy(metrics: Dict[str, Any]) -> None:
    """Raise OrchError(FAILED) when the run set eval.min_accuracy and fell below it."""
    if not metrics.get("meets_min_accuracy", True):
        raise OrchError(
            f"run {metrics.get('run_id')!r}: accuracy {metrics['accuracy']:.2%} is below eval.min_accuracy "
            f"{metrics['min_accuracy']:.2%}",
            ExitCode.FAILED,
        )


def plots_key(ev: Evaluation) -> str:
    """What the plots of an evaluation are drawn from: its metrics and the score files
    (by their manifest hashes). Equal keys: the plots already drawn are these plots."""
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in ev.metrics.items() if k != "files"}, sort_keys=True, default=str).encode())
    h.update(scores_digest(ev.run).encode())
    h.update(str(plotting.VERSION).encode())
    return h.hexdigest()


def evaluate_run(
    run_dir: Path, *, prior: Optional[str] = None, bands: Optional[str] = None, plots: bool = False
) -> Dict[str, Any]:
    """Evaluate a fetched run: write metrics.json, predictions.csv and report.md into
    ``run_dir`` and return the metrics.

    Plots are a separate, slower step (matplotlib): ``plots=True`` draws plots/*.png
    unless the ones there were drawn from this very evaluation (then they are kept as they
    are).  Without it, plots drawn from this evaluation are kept and plots of an earlier,
    different one are removed, so report.md, metrics.json and plots/ always agree.

    ``prior``/``bands`` override the run's eval.prior / eval.bands. Does not check
    eval.min_accuracy: call :func:`check_min_accuracy` for that.
    """
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    scores = load_scores(run)
    found = (
        ystk.predictions(run, scores, run_dir)
        if run.experiment.eval.yardsticks
        else {"available": False, "reason": "turned off (eval.yardsticks: false)"}
    )
    ev = evaluate(run, scores, prior=prior, bands=bands, yardsticks=found)
    out_dir = run_dir / report.PLOTS
    key = plots_key(ev)
    plot_files = plotting.current(out_dir, key)
    if plot_files is None and plots:
        plot_files = plotting.write_plots(
            out_dir, key, plotting.PlotData(ev.metrics, ev.scores, ev.score, ev.score_norm)
        )
    elif plot_files is None:
        plotting.remove(out_dir)
        plot_files = []
    report.write_all(
        run_dir,
        ev.metrics,
        ev.scores,
        ev.pred,
        ev.pred_norm,
        ev.run.config.get("experiment") or {},
        plot_files,
        margin_se=ev.margin_se,
        score=ev.score,
    )
    return ev.metrics
