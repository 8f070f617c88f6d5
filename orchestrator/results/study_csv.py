"""A study's table.csv: one line per row and seed (``seed`` "mean" for the row's aggregate),
then the yardsticks' lines, then one per pair (``type`` "pair", B in ``vs``, whether it is
``primary`` and the family Holm ran over); text cells made safe for spreadsheets
(report.SafeWriter).  Apart from study_report.py, which writes the other files, because the
CSV's columns are a contract of their own (docs/RESULTS.md)."""

from __future__ import annotations

import io
from typing import Any, Dict, Iterable, List, Optional

from orchestrator.results.report import SafeWriter


def judged_on(basis: Optional[str], bands: Optional[str], ensemble: bool) -> str:
    """What judged a row or a seed, for table.csv: its band set, the yardsticks, or nothing
    (an ensemble on a data set the bands are not for: only its components were judged)."""
    if basis == "bands":
        return bands or ""
    if basis == "yardsticks":
        return "not judged" if ensemble else "yardsticks"
    return ""


CSV_HEADER = [
    "row",
    "type",
    "seed",
    "run_id",
    "seeds_done",
    "seeds_planned",
    "accuracy",
    "accuracy_sd",
    "accuracy_ci95_low",
    "accuracy_ci95_high",
    "macro_f1",
    "roc_auc",
    "per_token_accuracy",
    "per_token_accuracy_sd",
    "per_token_macro_f1",
    "per_token_roc_auc",
    "gpu_seconds",
    "job_seconds",
    "train_tokens_per_s",
    "pretrain_tokens_per_s",
    "tied",
    "predicted_classes",
    "draws",
    "decisions_not_significant",
    "draws_share",
    "verdict",
    "judged_on",
    "note",
    # a pair's line (type "pair": row is A): B, A - B, its test and whether it is primary
    "vs",
    "accuracy_diff",
    "diff_ci95_low",
    "diff_ci95_high",
    "p_value",
    "p_holm",
    "primary",
    "holm_family",
    "holm_family_size",
]
ROW_COLUMNS = CSV_HEADER.index("vs")  # a row's line leaves the pair columns empty


def _blank(v: Any) -> Any:
    return "" if v is None else v


def table_csv(table: Dict[str, Any]) -> str:
    buf = io.StringIO()
    w = SafeWriter(buf)
    w.writerow(CSV_HEADER)

    def write(cells: Iterable[Any]) -> None:  # every line has every column: a row's leaves the pair columns empty
        cells = list(cells)
        w.writerow(cells + [""] * (len(CSV_HEADER) - len(cells)))

    for r in table["rows"]:
        write(
            map(
                _blank,
                [
                    r["name"],
                    r["type"],
                    "mean",
                    "",
                    r["n_done"],
                    r["n_planned"],
                    r["accuracy_mean"],
                    r["accuracy_sd"],
                    *(r["accuracy_mean_ci95"] or (None, None)),
                    r["macro_f1_mean"],
                    r["roc_auc_mean"],
                    r["per_token_accuracy_mean"],
                    r["per_token_accuracy_sd"],
                    r["per_token_macro_f1_mean"],
                    r["per_token_roc_auc_mean"],
                    r["gpu_seconds"],
                    r["job_seconds"],
                    r["train_tokens_per_s"],
                    r.get("pretrain_tokens_per_s"),
                    None,
                    None,
                    None,
                    None,
                    None,
                    r["verdict"],
                    judged_on(r["verdict_basis"], r["bands"], r["type"] == "ensemble"),
                    r["note"],
                ],
            )
        )
        for s in r["seeds"]:
            t = s["per_token"] or {}
            e = s.get("estimator") or {}
            low, high = s["accuracy_ci95"] or (None, None)
            write(
                map(
                    _blank,
                    [
                        r["name"],
                        r["type"],
                        s["seed"],
                        s["run_id"],
                        None,
                        None,
                        s["accuracy"],
                        None,
                        low,
                        high,
                        s["macro_f1"],
                        s["roc_auc"],
                        t.get("accuracy"),
                        None,
                        t.get("macro_f1"),
                        t.get("roc_auc"),
                        s["gpu_seconds"],
                        s["job_seconds"],
                        s["train_tokens_per_s"],
                        s.get("pretrain_tokens_per_s"),
                        e.get("tied"),
                        " ".join(e.get("predicted_classes") or []),
                        e.get("draws"),
                        e.get("not_significant"),
                        e.get("draws_share"),
                        s["verdict"],
                        judged_on(s["verdict_basis"], r["bands"], r["type"] == "ensemble"),
                        _cpu_note(s),
                    ],
                )
            )
    for line in _yardstick_csv_lines(table):
        write(map(_blank, line))
    holm = table.get("holm") or {}
    for p in table["pairs"]:
        tested = p["p_value"] is not None
        low, high = p["diff_ci95"] if tested else (None, None)
        line: List[Any] = [p["a"], "pair", None, None, len(p["seeds"]), None] + [None] * (ROW_COLUMNS - 6)
        line[CSV_HEADER.index("note")] = "" if tested else "no seed in common"
        line += [
            p["b"],
            p.get("accuracy_diff"),
            low,
            high,
            p["p_value"],
            p["p_holm"],
            "true" if p.get("primary", True) else "false",
            holm.get("family"),
            holm.get("size"),
        ]
        write(map(_blank, line))
    return buf.getvalue()


def _yardstick_csv_lines(table: Dict[str, Any]) -> List[List[Any]]:
    """A yardstick's lines (type "yardstick", judged on nothing): its aggregate ("mean"; the
    note says when it is the same in every run), then, where it differs between runs, one per seed."""
    out: List[List[Any]] = []
    at = CSV_HEADER.index

    def line(y: Dict[str, Any], seed: Any, run_id: Any, values: Dict[str, Any]) -> List[Any]:
        cells: List[Any] = [None] * ROW_COLUMNS
        cells[: at("seeds_done")] = [y["name"], "yardstick", seed, run_id]
        for key, value in values.items():
            cells[at(key)] = value
        return cells

    for y in table.get("yardsticks") or []:
        low, high = y["accuracy_mean_ci95"] or (None, None)
        out.append(
            line(
                y,
                "mean",
                "",
                {
                    "seeds_done": y["n_done"],
                    "seeds_planned": len(table["seeds"]),
                    "accuracy": y["accuracy_mean"],
                    "accuracy_sd": y["accuracy_sd"],
                    "accuracy_ci95_low": low,
                    "accuracy_ci95_high": high,
                    "macro_f1": y["macro_f1_mean"],
                    "judged_on": "reference",
                    "note": y["note"],
                },
            )
        )
        if y["same_in_every_run"] is False:
            for s in y["seeds"]:
                low, high = s["accuracy_ci95"] or (None, None)
                values = {"accuracy": s["accuracy"], "accuracy_ci95_low": low, "accuracy_ci95_high": high}
                out.append(line(y, s["seed"], s["run_id"], {**values, "macro_f1": s["macro_f1"]}))
    return out


def _cpu_note(seed: Dict[str, Any]) -> str:
    jobs = seed.get("ran_on_cpu") or {}
    return f"given a GPU, ran on the CPU: {', '.join(jobs)}" if jobs else ""
