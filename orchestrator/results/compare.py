"""Compare evaluated runs: one table across runs and McNemar's exact test between pairs.

Read-only: every number is recomputed from the runs' score files (the same code as
``orch eval``), nothing is written into the run folders. Runs must have scored the same
test ids (with the same labels); with ``force`` they are compared on the ids they share.

McNemar's exact test: of the texts exactly one of two runs classifies correctly, b went
to run A and c to run B; under "equally accurate" b ~ Binomial(b + c, 1/2), and the
two-sided p-value is 2 P(X <= min(b, c)), at most 1 (what scipy.stats.binomtest gives
for p = 1/2), summed in exact integers.

The table is printed by commands/results_view.py; this module only computes it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from orchestrator.errors import ExitCode, OrchError
from orchestrator.results import yardsticks as ystk
from orchestrator.results.evaluate import Evaluation, evaluate
from orchestrator.results.metrics import mcnemar_exact, mcnemar_pair  # noqa: F401 (part of this module's API)
from orchestrator.results.scores import RunData, load_run, load_scores
from orchestrator.results.scoretable import Scores, name_examples


@dataclass
class Loaded:
    name: str
    run: RunData
    scores: Scores


def holm(p_values: Sequence[float]) -> List[float]:
    """Holm-Bonferroni adjusted p-values (same order as given).

    With m pairs, one of them reaching p < 0.05 by chance alone is likely when m is large
    (10 pairs for 5 runs); Holm's step-down keeps the family-wise error at the nominal
    level and is never less powerful than Bonferroni.  Adjusted p_(i) = max over j <= i of
    min(1, (m - j + 1) p_(j)) in ascending order of p.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _in_run(name: str, exc: OrchError) -> OrchError:
    """The error prefixed with the run's name, unless the message already starts with it
    (load_scores and friends name the run themselves)."""
    prefix = f"run {name!r}"
    message = exc.message if exc.message.startswith(prefix) else f"{prefix}: {exc.message}"
    return OrchError(message, exc.code, exc.hint)


def _load(name: str, run_dir: Path) -> Loaded:
    try:
        run = load_run(run_dir)
        return Loaded(name, run, load_scores(run))
    except OrchError as exc:
        raise _in_run(name, exc) from None


def common_ids(loaded: Sequence[Loaded], force: bool) -> Tuple[List[str], bool]:
    """The shared test ids (first run's order) and whether the sets differed."""
    sets = [set(x.scores.ids) for x in loaded]
    shared = set.intersection(*sets)
    differ = any(s != sets[0] for s in sets[1:])
    if not shared:  # --force cannot help: there is nothing to compare them on
        raise OrchError(
            "the runs share no test ids: nothing to compare",
            ExitCode.DATA,
            hint="they were scored on different data sets",
        )
    if differ and not force:
        parts = []
        for x, s in zip(loaded, sets):
            only = sorted(s - shared)
            parts.append(
                f"{x.name!r} has {len(s)}"
                + (f" ({len(only)} not in every run, e.g. {name_examples(only)})" if only else "")
            )
        # The runs' data do not fit together (DATA, as for other labels below): the command
        # line was fine, so not typer's usage code 2.
        raise OrchError(
            "the runs scored different test sets: " + "; ".join(parts),
            ExitCode.DATA,
            hint=f"--force compares them on the {len(shared)} test ids they share",
        )
    ids = [tid for tid in loaded[0].scores.ids if tid in shared]
    # Same ids must mean the same texts: the labels have to agree too.
    ref = dict(zip(loaded[0].scores.ids, loaded[0].scores.labels))
    for x in loaded[1:]:
        bad = [tid for tid, label in zip(x.scores.ids, x.scores.labels) if tid in shared and ref[tid] != label]
        if bad:
            raise OrchError(
                f"runs {loaded[0].name!r} and {x.name!r} give different labels to {len(bad)} test id(s): "
                f"{name_examples(bad)}",
                ExitCode.DATA,
                hint="they were scored on different data sets",
            )
    return ids, differ


def _row(name: str, ev: Evaluation, per_token: bool) -> Dict[str, Any]:
    m = ev.metrics
    head = m["per_token"] if per_token else m
    pre = ev.run.experiment.pretrain
    return {
        "run_id": name,
        "kind": m["kind"],
        "init": m["init"],
        "prior": m["prior"]["applied"],
        "n": m["n"],
        "accuracy": head["accuracy"],
        "accuracy_ci95": head["accuracy_ci95"],
        "macro_f1": head["macro_f1"],
        "roc_auc": head["roc_auc"],
        "verdict": head["verdict"] if per_token else m["verdict"]["label"],
        "bands": m["verdict"]["bands"],
        "basis": m["verdict"].get("basis", "bands"),  # bands, or the yardsticks the run was judged against
        "compute": "gpu" if m["gpu_seconds"] else "cpu",  # what the time below was spent on
        "gpu_seconds": m["gpu_seconds"],
        "job_seconds": m.get("timings", {}).get("wall_seconds", 0.0),
        "train_tokens": m["train_tokens"],
        "scored_tokens": m["scored_tokens"],
        # the run whose pretraining this one starts from: its compute is counted there, not here
        "pretrain_from": (pre.from_run or None) if pre.enabled else None,
    }


def compare_runs(runs: Sequence[Tuple[str, Path]], *, force: bool = False, per_token: bool = False) -> Dict[str, Any]:
    """{"runs": [row...], "pairs": [McNemar...], "n_common", "test_sets_differ", "per_token"}."""
    names = [name for name, _ in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise OrchError(f"run(s) named more than once: {', '.join(dupes)}", ExitCode.USAGE)
    if not runs:
        raise OrchError("name at least one run to compare", ExitCode.USAGE)
    loaded = [_load(name, Path(path)) for name, path in runs]
    ids, differ = common_ids(loaded, force)
    rows, correct = [], []
    for x in loaded:
        try:
            # the yardsticks `orch eval` cached, if any: a comparison trains nothing
            found = ystk.predictions(x.run, x.scores, x.run.run_dir, compute=False)
            ev = evaluate(x.run, x.scores.subset(ids), yardsticks=ystk.subset(found, x.scores, ids))
        except OrchError as exc:
            raise _in_run(x.name, exc) from None
        rows.append(_row(x.name, ev, per_token))
        correct.append((ev.pred_norm if per_token else ev.pred) == ev.scores.y)
    pairs = []
    for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
        pairs.append({"a": a, "b": b, **mcnemar_pair(correct[i], correct[j])})
    for pair, adjusted in zip(pairs, holm([p["p_value"] for p in pairs])):
        pair["p_holm"] = adjusted
    return {
        "runs": rows,
        "pairs": pairs,
        "n_common": len(ids),
        "test_sets_differ": differ,
        "per_token": per_token,
    }
