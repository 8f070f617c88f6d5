"""A study's numbers: every (member, seed) run evaluated, one row per member and ensemble,
and McNemar's exact test between every pair of rows.  Pure: reads the runs' files,
writes nothing (``study_report.py`` writes the files, ``study_plots.py`` draws).

Every run is evaluated by ``evaluate.evaluate`` on its own scores, exactly as ``orch eval``
does (its prior, bands and bootstrap settings; the yardsticks only where ``orch eval``
cached them), so a seed's accuracy and 95% interval here are the ones in its metrics.json.

**Same test set.**  Paired tests and ensembles need every run to have scored the same
texts.  The study launches them on one split, and that is checked, not assumed: every run
must hold the same test ids, with the same labels and the same classes, as the first run
with results; one that does not is refused (ExitCode.DATA, as `orch compare` refuses runs scored
on different test sets), naming it and what differs.

**A member's row** is the mean ± sample sd (n - 1) of its seeds' accuracies, over the
seeds that have results, with the mean's 95% interval over both the test texts and the
seeds (seedvar.mean_accuracy_ci: a seed's accuracy moves by more than 25,000 texts can
show; at one seed the run's own interval, and seed-to-seed variation is not measured),
and says how many of the planned seeds those are: a member that
lost a seed is marked (``complete`` false, ``note`` "2 of 3 seeds; seed 2: failed: ...")
and its missing seeds are listed, never averaged as if the set were whole.  The verdict
of the mean uses the band set the runs were judged by (eval.bands, by model kind); a run
whose data set the bands are not for (eval.bands_dataset) was judged against the
yardsticks instead, and then the mean gets no band verdict (``verdict`` None).
``verdict_span`` lists the bands the mean's interval reaches (more than one: the study
does not settle the band).  Training
throughput is the tokens the class jobs trained on (tokens_seen) over their train_s, and a
pretraining job's apart (train_throughput).  Each seed also carries what its run's report
says of its decisions (estimator_record: ties, the classes predicted, MDLM's draws).

**Pairs.**  For two rows, each seed both have pairs the two runs text by text, and the
test takes texts as its unit (pairtest.paired_over_seeds: the sign-flip test of each
text's seed-averaged difference; McNemar's exact test at one seed), and from two seeds up
also the seeds' variance of the difference (the larger p of the two).  Summing McNemar's
counts over seeds instead would count each text once per seed and find differences that
are not there (pairtest says how often).  The rows' headline (raw-score) predictions are
used, as in ``orch compare``.  Every pair is tested; a pair with no seed in common has no
test.  Holm's correction (compare.holm) runs over the study's primary comparisons (its
``compare:``, declared before the results are seen) that were tested: those pairs are
``primary`` and only they may be called a difference; every other pair is ``exploratory``,
shown with its unadjusted p and no ``p_holm``.  Without ``compare:`` every pair is primary
and Holm runs over all of them (with 5 members and an ensemble, 15: with few seeds nothing
survives that, which is why a paper declares its primary comparisons).  ``holm`` in the
table says which family it was (``primary`` or ``all``) and its size.

**Ensembles.**  ``ensembles: {name: [m1, m2, ...]}`` adds a row per name.  For each seed
every component has, each component's per-token class scores (the evaluation's
``score_norm``) are centred per text (each class's score less the text's mean over the
classes) and divided by the standard deviation of those centred scores over the run, summed
over the components, and the argmax is the ensemble's prediction.  Why scaled: the raw scores
are negative log-likelihoods whose scale differs between model families (an AR model's exact
NLL, an MDLM's bound, a classifier's log posterior), so a plain sum would let the family with
the widest spread decide alone.  Why centred first: a shift common to all classes of a text
(how hard the text is to model) does not move the argmax, so it must not set a member's
weight either; z-scoring the raw scores did, and gave less say to a member whose texts vary
in difficulty, whatever its class margins.  Centred, each member's scale is the spread of
its class margins (for two classes, the root mean square of its margins), which is what
decides.  The per-token scores are used so long and short texts weigh alike.
The ensemble is then scored like a member (metrics.classification_metrics: accuracy with
its 95% interval, macro-F1, ROC-AUC, verdict) and takes part in the pairwise tests.

**Yardsticks.**  table.json's ``yardsticks`` holds naive Bayes and TF-IDF logistic
regression on the same test texts, from each run's cached yardstick predictions (shown once
when every run holds the same, which it does unless the runs' data settings differ):
reference rows, in no pair (study_yardsticks.py says how and why).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from orchestrator.errors import ExitCode, OrchError
from orchestrator.results import yardsticks as ystk
from orchestrator.results.compare import _in_run, holm
from orchestrator.results.evaluate import Evaluation, evaluate, ids_digest, software_facts
from orchestrator.results.metrics import (
    BAND_TITLES,
    applied_to,
    classification_metrics,
    describe_bands,
    predict,
    strictest_bands,
    tie_keys,
    verdict,
    verdict_span,
)
from orchestrator.results.pairtest import paired_over_seeds
from orchestrator.results.scores import load_run, load_scores
from orchestrator.results.scoretable import name_examples
from orchestrator.results.seedvar import mean_accuracy_ci
from orchestrator.results.study_yardsticks import RunYardsticks, yardstick_rows

SCHEMA = 1
ENSEMBLE_METHOD = (
    "per-token class scores of each member, centred per text and divided by their standard deviation over "
    "its run (the spread of its class margins), summed, argmax"
)


@dataclass
class MemberRun:
    """One (member, seed) of a study and where its results are."""

    member: str
    seed: int
    run_id: str
    run_dir: Optional[Path]  # the local run folder with fetched results, None when not fetched
    missing: str = ""  # why it has no results ("failed: ...", "not fetched yet", "running"); "" when it has


@dataclass
class SeedResult:
    """One row-seed: its predictions aligned to the study's test-id order, and its numbers."""

    seed: int
    run_id: str
    correct: np.ndarray  # (n,) bool, in the reference id order
    record: Dict[str, Any]  # what table.json holds for this seed
    evaluation: Optional[Evaluation] = None  # members only (ensembles have none)


# --------------------------------------------------------------------------- loading


def _evaluate(mr: MemberRun) -> Tuple[Evaluation, Dict[str, Any]]:
    """The run evaluated as `orch eval` does, and its yardsticks' predictions (or why none)."""
    try:
        run = load_run(Path(mr.run_dir))  # type: ignore[arg-type]
        scores = load_scores(run)
        # the yardsticks `orch eval` cached, if any: a report trains nothing
        found = (
            ystk.predictions(run, scores, run.run_dir, compute=False)
            if run.experiment.eval.yardsticks
            else {"available": False, "reason": "turned off (eval.yardsticks: false)"}
        )
        return evaluate(run, scores, yardsticks=found), found
    except OrchError as exc:
        raise _in_run(mr.run_id, exc) from None


class ReferenceSet:
    """The study's test set, fixed by the first run with results; every other run is checked against it."""

    def __init__(self, first: MemberRun, ev: Evaluation):
        s = ev.scores
        self.source = first.run_id
        self.ids: List[str] = list(s.ids)
        self.classes: List[str] = list(s.classes)
        self.label = dict(zip(s.ids, s.labels))
        self.y = s.y.copy()
        self.digest = ids_digest(s.ids)

    def align(self, mr: MemberRun, ev: Evaluation) -> np.ndarray:
        """Row indices that put this run's texts in the reference order (refused unless
        the run scored exactly the same ids, with the same labels and classes)."""
        s = ev.scores
        where = f"run {mr.run_id!r} (member {mr.member!r}, seed {mr.seed})"
        hint = (
            "every run of a study must score the same test split: re-run this member with the study's data "
            "settings (or leave it out of the study)"
        )
        if list(s.classes) != self.classes:
            raise OrchError(
                f"{where} has classes {s.classes}, run {self.source!r} {self.classes}", ExitCode.DATA, hint=hint
            )
        mine, ref = set(s.ids), set(self.ids)
        if mine != ref:
            extra, lacking = sorted(mine - ref), sorted(ref - mine)
            parts = [f"{where} scored {len(mine)} test ids, run {self.source!r} {len(ref)}"]
            if extra:
                parts.append(f"{len(extra)} not in {self.source!r} (e.g. {name_examples(extra)})")
            if lacking:
                parts.append(f"{len(lacking)} of {self.source!r}'s missing (e.g. {name_examples(lacking)})")
            raise OrchError("different test sets: " + "; ".join(parts), ExitCode.DATA, hint=hint)
        bad = [tid for tid, label in zip(s.ids, s.labels) if self.label[tid] != label]
        if bad:
            raise OrchError(
                f"{where} gives other labels than run {self.source!r} to {len(bad)} test id(s): {name_examples(bad)}",
                ExitCode.DATA,
                hint=hint,
            )
        index = dict(zip(s.ids, range(len(s.ids))))
        return np.fromiter(map(index.__getitem__, self.ids), dtype=np.int64, count=len(self.ids))


# --------------------------------------------------------------------------- numbers


def _mean_sd(values: Sequence[Optional[float]]) -> Tuple[Optional[float], Optional[float]]:
    """Mean and sample sd (n - 1) of the values given (None ones skipped); sd None below two."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None, None
    mean = float(np.mean(xs))
    return mean, (float(np.std(xs, ddof=1)) if len(xs) > 1 else None)


def predicted_classes(m: Dict[str, Any]) -> List[str]:
    """The classes a run predicted for at least one text (its confusion matrix's columns)."""
    counts = np.asarray(m["confusion_matrix"], dtype=float).sum(axis=0)
    return [c for c, k in zip(m["classes"], counts) if k > 0]


def estimator_record(m: Dict[str, Any]) -> Dict[str, Any]:
    """What a run's report says of how its decisions were made, for the study's: texts whose
    best score two classes tie (``tied``, decided by class order), the classes it predicted
    (one: the run collapsed), and for a kind with draws (MDLM) how many per text, the share
    of decisions not significant under them (None at one draw: no spread to measure) and
    their share of the accuracy interval's variance (None when the interval holds no draws)."""
    paired = m.get("paired") or {}
    mc = m.get("mc_noise") or {}
    return {
        "tied": int(m.get("tied") or 0),
        "predicted_classes": predicted_classes(m),
        "draws": paired.get("draws"),
        "adaptive_draws": bool(m.get("adaptive")),
        "not_significant": paired.get("not_significant"),
        "interval_has_draws": bool(mc),
        "draws_share": mc.get("share_mc"),
    }


CLASS_ROLES = ("class", "classifier")  # the jobs that train the models a run decides with
PRETRAIN_ROLES = ("pretrain",)


def train_throughput(timings: Dict[str, Any], roles: Sequence[str] = CLASS_ROLES) -> Optional[float]:
    """Training tokens per second of a run's jobs in ROLES: the tokens they trained on
    (``tokens_seen``: every step's batch, epochs and repeats counted) over their ``train_s``,
    both summed over the jobs recording both; None when none does.  The run report's
    ``train tok/s`` is the same quotient per job.  Not ``train_tokens`` (the training set's
    size, which says nothing of how many steps ran), and the class models apart from a
    pretraining job (another model, data and batch: ROLES chooses)."""
    tokens = seconds = 0.0
    for job in timings.get("jobs", {}).values():
        if job.get("role") not in roles:
            continue
        tok, sec = job.get("tokens_seen"), job.get("train_s")
        if isinstance(tok, int) and not isinstance(tok, bool) and isinstance(sec, (int, float)) and sec > 0:
            tokens += tok
            seconds += float(sec)
    return tokens / seconds if seconds else None


def _seed_record(mr: MemberRun, ev: Evaluation) -> Dict[str, Any]:
    m = ev.metrics
    t = m["per_token"]
    return {
        "seed": mr.seed,
        "run_id": mr.run_id,
        "n": m["n"],
        "accuracy": m["accuracy"],
        "accuracy_ci95": m["accuracy_ci95"],
        "macro_f1": m["macro_f1"],
        "roc_auc": m["roc_auc"],
        "per_token": {k: t[k] for k in ("accuracy", "accuracy_ci95", "macro_f1", "roc_auc", "verdict")},
        "verdict": m["verdict"]["label"],
        "verdict_basis": m["verdict"].get("basis", "bands"),
        "estimator": estimator_record(m),
        "gpu_seconds": m["gpu_seconds"],
        "job_seconds": m["timings"]["wall_seconds"],
        "train_tokens": m["train_tokens"],
        "train_tokens_per_s": train_throughput(m["timings"]),
        "pretrain_tokens_per_s": train_throughput(m["timings"], PRETRAIN_ROLES),
        "code_hash": m["facts"].get("code_hash"),
        # jobs given a GPU that torch could not use, so they ran on the CPU (report.cpu_fallback_lines)
        "ran_on_cpu": ran_on_cpu(m["timings"]),
    }


def ran_on_cpu(timings: Dict[str, Any]) -> Dict[str, str]:
    """Job -> its own words (manifest.json's device_note), for the jobs of a run that were
    given a GPU and ran on the CPU: their results stand, their times are CPU times."""
    return {name: j["device_note"] for name, j in timings.get("jobs", {}).items() if j.get("device_note")}


def _summary(seeds: List[SeedResult], planned: Sequence[int], missing: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The aggregate columns of a row over its seeds with results (see the module doc)."""
    recs = [s.record for s in seeds]
    out: Dict[str, Any] = {
        "seeds_planned": list(planned),
        "seeds_done": [r["seed"] for r in recs],
        "n_planned": len(planned),
        "n_done": len(recs),
        "complete": not missing,
        "missing": missing,
    }
    for key in ("accuracy", "macro_f1", "roc_auc"):
        out[f"{key}_mean"], out[f"{key}_sd"] = _mean_sd([r[key] for r in recs])
        pt = [r["per_token"][key] for r in recs if r.get("per_token")]
        out[f"per_token_{key}_mean"], out[f"per_token_{key}_sd"] = _mean_sd(pt)
    out["accuracy_mean_ci95"] = _mean_ci(seeds)
    out["gpu_seconds"] = float(sum(r["gpu_seconds"] or 0.0 for r in recs))
    out["job_seconds"] = float(sum(r["job_seconds"] or 0.0 for r in recs))
    out["train_tokens_per_s"], _ = _mean_sd([r.get("train_tokens_per_s") for r in recs])
    out["pretrain_tokens_per_s"], _ = _mean_sd([r.get("pretrain_tokens_per_s") for r in recs])
    out["note"] = _note(out)
    return out


def _mean_ci(seeds: List[SeedResult]) -> Optional[List[float]]:
    """The mean accuracy's interval over texts and seeds; at one seed the run's own (which
    holds the estimator's draws where the run has two or more per text)."""
    if len(seeds) < 2:
        return seeds[0].record["accuracy_ci95"] if seeds else None
    return mean_accuracy_ci(np.stack([s.correct for s in seeds]))


def _note(row: Dict[str, Any]) -> str:
    """'' for a complete row, else '2 of 3 seeds; seed 2: failed: ...'."""
    if row["complete"]:
        return ""
    why = "; ".join(f"seed {m['seed']}: {m['why']}" for m in row["missing"])
    return f"{row['n_done']} of {row['n_planned']} seeds; {why}"


def _mean_verdict(row: Dict[str, Any], recs: List[Dict[str, Any]], band_set: Optional[str]) -> None:
    """verdict / verdict_basis of the mean (see the module doc)."""
    row["bands"] = band_set
    row["verdict_span"] = []
    if not recs:
        row["verdict"], row["verdict_basis"] = None, None
    elif band_set and all(r["verdict_basis"] == "bands" for r in recs):
        row["verdict"], row["verdict_basis"] = verdict(row["accuracy_mean"], band_set), "bands"
        row["verdict_span"] = verdict_span(row["accuracy_mean_ci95"], band_set)
    else:  # judged against the yardsticks, run by run: no band set applies to the row
        row["verdict"], row["verdict_basis"], row["bands"] = None, "yardsticks", None


# --------------------------------------------------------------------------- rows


def margin_scaled(score: np.ndarray) -> np.ndarray:
    """SCORE (n, C) centred per text across the classes and divided by the standard
    deviation of the centred scores (their root mean square): the per-text shift that no
    decision depends on removed, and the member's margins put on a unit scale."""
    centred = score - score.mean(axis=1, keepdims=True)
    sd = float(np.sqrt(np.mean(centred**2)))
    return centred / (sd if sd > 0 else 1.0)


def _ensemble_seed(
    seed: int, parts: List[Tuple[SeedResult, np.ndarray]], test: ReferenceSet, band_set: str
) -> SeedResult:
    """PARTS: each component's seed result and its alignment to the reference order."""
    combined = sum(margin_scaled(sr.evaluation.score_norm[rows]) for sr, rows in parts)  # type: ignore[union-attr]
    first = parts[0][0].evaluation.run.experiment.eval  # type: ignore[union-attr]
    cm = classification_metrics(test.y, combined, test.classes, band_set, first.bootstrap, test.ids)
    recs = [sr.record for sr, _ in parts]
    record = {
        "seed": seed,
        "run_id": "+".join(r["run_id"] for r in recs),
        "runs": [r["run_id"] for r in recs],
        "n": cm["n"],
        "accuracy": cm["accuracy"],
        "accuracy_ci95": cm["accuracy_ci95"],
        "macro_f1": cm["macro_f1"],
        "roc_auc": cm["roc_auc"],
        "per_token": None,  # built from the per-token scores already
        "verdict": cm["verdict"],
        "verdict_basis": "bands" if all(r["verdict_basis"] == "bands" for r in recs) else "yardsticks",
        "estimator": estimator_record({**cm, "classes": test.classes}),  # no draws of its own
        "gpu_seconds": float(sum(r["gpu_seconds"] or 0.0 for r in recs)),
        "job_seconds": float(sum(r["job_seconds"] or 0.0 for r in recs)),
        "train_tokens": int(sum(r["train_tokens"] or 0 for r in recs)),
        "train_tokens_per_s": None,
        "pretrain_tokens_per_s": None,
        "code_hash": None,
        "ran_on_cpu": {},  # its components' runs say it
    }
    if record["verdict_basis"] != "bands":
        record["verdict"] = None
    correct = predict(combined, tie_keys(test.ids, len(test.classes))) == test.y
    return SeedResult(seed, record["run_id"], correct, record)


def _missing(mr: Optional[MemberRun], member: str, seed: int) -> Dict[str, Any]:
    if mr is None:
        return {"member": member, "seed": seed, "run_id": None, "why": "not launched"}
    why = mr.missing or ("not fetched yet" if mr.run_dir is None else "no results")
    return {"member": member, "seed": seed, "run_id": mr.run_id, "why": why}


def _check_plan(study: Dict[str, Any], members: Sequence[MemberRun]) -> None:
    names = set(study.get("members") or {})
    for mr in members:
        if mr.member not in names or mr.seed not in study.get("seeds", []):
            raise OrchError(
                f"run {mr.run_id!r} is member {mr.member!r} seed {mr.seed}, which study {study.get('name')!r} "
                f"does not plan (members {sorted(names)}, seeds {study.get('seeds')})",
                ExitCode.USAGE,
            )
    seen = set()
    for mr in members:
        if (mr.member, mr.seed) in seen:
            raise OrchError(f"member {mr.member!r} seed {mr.seed} is given twice", ExitCode.USAGE)
        seen.add((mr.member, mr.seed))
    for ens, parts in (study.get("ensembles") or {}).items():
        unknown = [p for p in parts if p not in names]
        if ens in names or unknown or len(parts) < 2:
            raise OrchError(
                f"ensemble {ens!r}: "
                + (
                    "has a member's name"
                    if ens in names
                    else f"unknown member(s) {unknown}"
                    if unknown
                    else "needs at least two members"
                ),
                ExitCode.CONFIG,
            )
    rows = names | set(study.get("ensembles") or {})
    seen_pairs = set()
    for pair in study.get("compare") or []:
        pair = list(pair) if isinstance(pair, (list, tuple)) else [pair]
        unknown = [r for r in pair if r not in rows]
        if len(pair) != 2 or pair[0] == pair[1] or unknown or frozenset(pair) in seen_pairs:
            raise OrchError(
                f"primary comparison {pair!r}: "
                + (f"no member or ensemble {unknown[0]!r}" if unknown else "not a pair of two different rows, once"),
                ExitCode.CONFIG,
            )
        seen_pairs.add(frozenset(pair))


def study_table(
    study: Dict[str, Any], members: Sequence[MemberRun]
) -> Tuple[Dict[str, Any], Dict[str, List[SeedResult]]]:
    """(table.json's content, each row's seed results) for STUDY (the resolved study
    mapping) and its MEMBERS' runs."""
    _check_plan(study, members)
    planned: List[int] = list(study.get("seeds") or [])
    by_key = {(mr.member, mr.seed): mr for mr in members}
    test: Optional[ReferenceSet] = None
    results: Dict[str, List[SeedResult]] = {}
    rows: List[Dict[str, Any]] = []
    missing_all: List[Dict[str, Any]] = []
    facts: List[Dict[str, Any]] = []
    aligned: Dict[Tuple[str, int], np.ndarray] = {}
    dataset = bands_dataset = None
    ran_yardsticks: List[RunYardsticks] = []

    for name, overrides in (study.get("members") or {}).items():
        seeds: List[SeedResult] = []
        missing: List[Dict[str, Any]] = []
        kind = band_set = None
        for seed in planned:
            mr = by_key.get((name, seed))
            if mr is None or mr.run_dir is None or mr.missing:
                missing.append(_missing(mr, name, seed))
                continue
            ev, found = _evaluate(mr)
            if test is None:
                test = ReferenceSet(mr, ev)
                dataset = ystk.run_dataset(ev.run)
                bands_dataset = ev.run.experiment.eval.bands_dataset
            rows_ = test.align(mr, ev)
            aligned[(name, seed)] = rows_
            correct = (ev.pred == ev.scores.y)[rows_]
            ran_yardsticks.append(RunYardsticks(name, seed, mr.run_id, ystk.subset(found, ev.scores, test.ids)))
            seeds.append(SeedResult(seed, mr.run_id, correct, _seed_record(mr, ev), ev))
            kind, band_set = ev.metrics["kind"], ev.metrics["verdict"]["bands"]
            facts.append(software_facts(ev.run))
        overrides = dict(overrides or {})
        # the kind its runs report; before any has results, the one its overrides ask for
        kind = kind or (str(overrides["model.kind"]) if "model.kind" in overrides else None)
        row = {"name": name, "type": "member", "overrides": overrides, "kind": kind}
        row.update(_summary(seeds, planned, missing))
        _mean_verdict(row, [s.record for s in seeds], band_set)
        row["seeds"] = [s.record for s in seeds]
        rows.append(row)
        results[name] = seeds
        missing_all += missing

    by_member = {r["name"]: r for r in rows}
    for ens, parts in (study.get("ensembles") or {}).items():
        sets = {p: by_member[p]["bands"] for p in parts}
        # Members judged on different sets: the ensemble gets the strictest of them.
        band_set = strictest_bands([b for b in sets.values() if b] or ["poc"])
        have = {p: {s.seed: s for s in results[p]} for p in parts}
        seeds, missing = [], []
        for seed in planned:
            lacking = [p for p in parts if seed not in have[p]]
            if lacking:
                missing.append(
                    {"member": ens, "seed": seed, "run_id": None, "why": f"no results from {', '.join(lacking)}"}
                )
                continue
            seeds.append(_ensemble_seed(seed, [(have[p][seed], aligned[(p, seed)]) for p in parts], test, band_set))  # type: ignore[arg-type]
        row = {"name": ens, "type": "ensemble", "components": list(parts), "kind": "ensemble"}
        row.update(_summary(seeds, planned, missing))
        _mean_verdict(row, [s.record for s in seeds], band_set)
        row["seeds"] = [s.record for s in seeds]
        rows.append(row)
        results[ens] = seeds

    compare = [list(p) for p in study.get("compare") or []]
    pairs = _pairs(rows, results, compare)
    family = [p for p in pairs if p["primary"] and p["p_value"] is not None]
    return (
        {
            "schema": SCHEMA,
            "study": study.get("name"),
            "base": study.get("base"),
            "host": study.get("host"),
            "seeds": planned,
            "data": {
                "dataset": dataset,
                "n_test": None if test is None else len(test.ids),
                "classes": None if test is None else test.classes,
                "test_ids_sha256": None if test is None else test.digest,
                "checked_against": None if test is None else test.source,
            },
            "code_hashes": sorted({str(f["code_hash"]) for f in facts if f.get("code_hash")}),
            "software": _merge_facts(facts),
            "rows": rows,
            # reference rows (study_yardsticks.py): in no pair, no Holm family, no plot
            "yardsticks": [] if test is None else yardstick_rows(ran_yardsticks, test.y, test.classes),
            "pairs": pairs,
            "pairs_tested": sum(p["p_value"] is not None for p in pairs),
            # the primary comparisons as declared (None: none declared, every pair is primary)
            "compare": compare or None,
            # the family Holm's correction ran over: the primary pairs tested, or every pair tested
            "holm": {"family": "primary" if compare else "all", "size": len(family)},
            "missing": missing_all,
            "bands": {
                b: {
                    "title": BAND_TITLES[b],
                    "thresholds": describe_bands(b),
                    # members judged on B only for comparison: {member: what it is}
                    "applied_to": {
                        r["name"]: applied_to(b, r["kind"])
                        for r in rows
                        if r["bands"] == b and r["verdict_basis"] == "bands" and applied_to(b, r["kind"])
                    },
                }
                for b in sorted({r["bands"] for r in rows if r["bands"] and r["verdict_basis"] == "bands"})
            },
            "bands_dataset": bands_dataset,
            "ensemble_method": ENSEMBLE_METHOD,
        },
        results,
    )


def _pairs(
    rows: List[Dict[str, Any]], results: Dict[str, List[SeedResult]], compare: List[List[str]]
) -> List[Dict[str, Any]]:
    """Every pair of rows, in row order (a primary pair as declared: A - B is what the
    study asked), tested; Holm over the primary ones (COMPARE, or every pair when COMPARE
    is empty).  A primary pair whose rows have no results yet is listed untested, so the
    report can say a declared comparison is missing."""
    declared = {frozenset(p): tuple(p) for p in compare}
    pairs = []
    names = [r["name"] for r in rows]
    for a, b in itertools.combinations(names, 2):
        is_primary = not compare or frozenset((a, b)) in declared
        a, b = declared.get(frozenset((a, b)), (a, b))  # A - B as the study declared it
        if not (results[a] and results[b]) and not (compare and is_primary):
            continue  # a row without results is in no pair, unless the study declared the pair
        sa = {s.seed: s for s in results[a]}
        sb = {s.seed: s for s in results[b]}
        common = sorted(set(sa) & set(sb))
        pair: Dict[str, Any] = {"a": a, "b": b, "seeds": common, "primary": is_primary}
        if common:
            pair.update(paired_over_seeds([sa[s].correct for s in common], [sb[s].correct for s in common]))
        else:
            pair.update(n=0, p_value=None)
        pairs.append(pair)
    family = [p for p in pairs if p["primary"] and p["p_value"] is not None]
    for pair, adjusted in zip(family, holm([p["p_value"] for p in family])):
        pair["p_holm"] = adjusted
    for pair in pairs:
        pair.setdefault("p_holm", None)
    return pairs


def _merge_facts(facts: List[Dict[str, Any]]) -> Dict[str, List[str]]:
    """Each software / host fact with every distinct value the runs gave (as text)."""
    out: Dict[str, List[str]] = {}
    for f in facts:
        for key, value in f.items():
            if value is None or key == "created":
                continue
            text = (", ".join(map(str, value)) or "none") if isinstance(value, list) else str(value)
            if text not in out.setdefault(key, []):
                out[key].append(text)
    return out
