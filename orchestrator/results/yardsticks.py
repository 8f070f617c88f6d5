"""Yardsticks: what two cheap bag-of-words classifiers get on exactly the run's split.

A per-class LM's accuracy means little alone: on short movie-review sentences 80% is
weak (naive Bayes gets about that), on IMDB 85% is what naive Bayes gets with bigrams.
So every evaluation trains, on the run's own training texts, and scores, on its own test
texts (scikit-learn, seconds on a CPU):

- ``nb``: multinomial naive Bayes on unigram + bigram counts;
- ``tfidf_lr``: logistic regression on unigram + bigram TF-IDF (sublinear tf).

Where the texts come from: the controller holds the data file the run was launched with.
``orch run`` records it in local.json (``data_files``: each data key's local path and
its staged host path, whose name starts with the file's sha256[:16]); evaluation reads
it again only when its sha256 still matches, else the staged copy named in run.yaml when
that path is readable here (host ``local``).  The split is remote.data.load_splits, the
code the jobs ran, with the run's own data settings, and it must give exactly the test
ids the score files hold: otherwise the yardsticks are left out and the report says why.
Data a host downloaded itself (``data.source: hf``) is not here: no yardsticks.

The predictions are cached in ``runs/<id>/yardsticks.json`` under a key of the data's
hashes, the data settings and the scikit-learn version (read from its metadata), so
re-evaluating costs nothing: scikit-learn is imported only when they are computed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from orchestrator.results.scores import RunData
from orchestrator.results.scoretable import Scores
from remote.data import dataset_name
from remote.files import sha256_file

CACHE = "yardsticks.json"
VERSION = 1  # bump when the models or their settings change
DATA_KEYS = ("path", "test_path", "unlabelled_path")
NAMES = {"nb": "naive Bayes (uni+bigram counts)", "tfidf_lr": "TF-IDF uni+bigram logistic regression"}
SETTINGS = {
    "nb": "CountVectorizer(ngram_range=(1, 2), min_df=2) + MultinomialNB()",
    "tfidf_lr": "TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True) + "
    "LogisticRegression(C=10, max_iter=2000)",
}


# --------------------------------------------------------------------------- the data set's name


def run_dataset(run: RunData) -> Optional[str]:
    """data.name as launched (``orch run`` fills it in), else the name of the local data
    file local.json records; None for a run launched before either was recorded (its
    run.yaml holds only the staged host path, whose folder says nothing)."""
    data = run.experiment.data
    if data.name:
        return data.name.lower()
    local = (run.local.get("data_files") or {}).get("path")
    if isinstance(local, dict) and isinstance(local.get("local"), str):
        return dataset_name(local["local"], data.source)
    return dataset_name(data.path, data.source) if data.source == "hf" else None


# --------------------------------------------------------------------------- the run's texts


def _local_files(run: RunData) -> Tuple[Optional[Dict[str, str]], Optional[str]]:
    """({data key: a local path holding the same bytes the host read}, None) or (None, why not)."""
    data = run.experiment.data
    if data.source != "file":
        return None, f"the data is {data.source} dataset {data.path!r}, which the host downloaded itself"
    recorded = run.local.get("data_files") if isinstance(run.local.get("data_files"), dict) else {}
    out: Dict[str, str] = {}
    for key in DATA_KEYS:
        host_path = getattr(data, key)
        if not host_path or key == "unlabelled_path":
            continue  # the unlabelled texts only pretrain the LMs: the yardsticks see the labelled split
        want = Path(host_path).name[:16]  # the staged name starts with the content's sha256[:16]
        candidates = []
        entry = recorded.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("local"), str):
            candidates.append(entry["local"])
        candidates.append(host_path)
        found = None
        for candidate in candidates:
            if os.path.isfile(candidate):
                try:
                    if sha256_file(candidate)[:16] == want:
                        found = candidate
                        break
                except OSError:
                    continue
        if found is None:
            return None, (
                f"data.{key}: no local copy of the file the run used (looked for "
                f"{', '.join(repr(c) for c in candidates)} with sha256 {want}...)"
            )
        out[key] = found
    return out, None


def _splits(run: RunData, files: Dict[str, str]):
    from remote.data import DataError, load_splits

    spec = dataclasses.replace(run.experiment.data, **files)
    try:
        return load_splits(spec, log=lambda _: None), None
    except DataError as exc:
        return None, f"the local data could not be split as the run did: {exc}"


def _key(run: RunData, files: Dict[str, str], scores: Scores, sklearn_version: str) -> str:
    h = hashlib.sha256()
    data = dataclasses.asdict(run.experiment.data)
    for k in DATA_KEYS:
        data.pop(k, None)
    h.update(
        json.dumps(
            {
                "v": VERSION,
                "sklearn": sklearn_version,
                "data": data,
                "files": {k: Path(run.experiment.data.__dict__[k]).name for k in files},
                "classes": scores.classes,
            },
            sort_keys=True,
        ).encode()
    )
    h.update("\n".join(scores.ids).encode())
    return h.hexdigest()


def _sklearn_version() -> Optional[str]:
    """scikit-learn's version, or None when it is not installed: from its installed
    metadata, not by importing it (``import sklearn`` loads scipy, ~1 s of CPU that a
    cached evaluation must not pay).  An imported sklearn is asked itself."""
    import sys

    if "sklearn" in sys.modules:
        return sys.modules["sklearn"].__version__
    import importlib.util

    if importlib.util.find_spec("sklearn") is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scikit-learn")
    except PackageNotFoundError:  # importable without metadata (a source tree): ask it
        import sklearn

        return sklearn.__version__


def _fit_predict(train_texts: List[str], train_y: np.ndarray, test_texts: List[str]) -> Dict[str, np.ndarray]:
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import MultinomialNB

    # The texts are tokenized once: TfidfVectorizer is CountVectorizer + TfidfTransformer,
    # so the TF-IDF rows come from the same counts (on IMDB's 20k/5k split tokenizing is
    # 20 s of CPU each time; the matrices agree to 1e-15).
    counts = CountVectorizer(ngram_range=(1, 2), min_df=2)
    train_counts, test_counts = counts.fit_transform(train_texts), counts.transform(test_texts)
    out = {"nb": MultinomialNB().fit(train_counts, train_y).predict(test_counts)}
    tfidf = TfidfTransformer(sublinear_tf=True)
    lr = LogisticRegression(C=10, max_iter=2000)
    out["tfidf_lr"] = lr.fit(tfidf.fit_transform(train_counts), train_y).predict(tfidf.transform(test_counts))
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


def _read_cache(path: Path, key: str, n: int, k: int) -> Optional[Dict[str, Any]]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key or not isinstance(doc.get("predictions"), dict):
        return None
    preds = {}
    for name in NAMES:
        values = doc["predictions"].get(name)
        if not isinstance(values, list) or len(values) != n or not all(type(v) is int and 0 <= v < k for v in values):
            return None
        preds[name] = np.array(values, dtype=np.int64)
    return {**doc, "predictions": preds}


def predictions(
    run: RunData, scores: Scores, cache_dir: Optional[Path] = None, *, compute: bool = True
) -> Dict[str, Any]:
    """{"available": True, "predictions": {name: (n,) class index, in scores.ids order},
    "train_texts", "seconds", "sklearn", "data"} or {"available": False, "reason"}.

    ``cache_dir``: where yardsticks.json is read and written (the run folder); ``compute``
    False only reads the cache (``orch compare`` must not train models per run)."""
    files, reason = _local_files(run)
    if files is None:
        return {"available": False, "reason": reason}
    cache = Path(cache_dir) / CACHE if cache_dir is not None else None
    sklearn_version = _sklearn_version()
    if sklearn_version is None:
        return {"available": False, "reason": "scikit-learn is not installed here (pip install scikit-learn)"}
    key = _key(run, files, scores, sklearn_version)
    if cache is not None:
        cached = _read_cache(cache, key, scores.n, len(scores.classes))
        if cached is not None:
            return cached
    if not compute:
        return {"available": False, "reason": f"not computed yet (`orch eval {run.run_id}` computes them)"}
    splits, reason = _splits(run, files)
    if splits is None:
        return {"available": False, "reason": reason}
    by_id = {e.id: e for e in splits.test}
    if set(by_id) != set(scores.ids):
        return {
            "available": False,
            "reason": f"the local data's test split ({len(by_id)} texts) is not the {scores.n} texts the jobs scored",
        }
    col = {c: i for i, c in enumerate(scores.classes)}
    test = [by_id[i] for i in scores.ids]
    if [col.get(e.label, -1) for e in test] != scores.y.tolist():
        return {"available": False, "reason": "the local data labels the test texts otherwise than the score files"}
    train = [e for e in splits.train if e.label in col]
    t0 = time.time()
    try:
        preds = _fit_predict([e.text for e in train], np.array([col[e.label] for e in train]), [e.text for e in test])
    except ValueError as exc:  # e.g. too few texts: no word occurs in two of them (min_df=2)
        return {"available": False, "reason": f"the yardsticks cannot be fitted on {len(train)} training texts: {exc}"}
    doc = {
        "available": True,
        "key": key,
        "sklearn": sklearn_version,
        "train_texts": len(train),
        "seconds": round(time.time() - t0, 2),
        "data": {k: os.path.abspath(v) for k, v in files.items()},
        "settings": SETTINGS,
    }
    if cache is not None:
        from orchestrator.localfiles import atomic_write_json

        atomic_write_json(str(cache), {**doc, "predictions": {k: v.tolist() for k, v in preds.items()}})
    return {**doc, "predictions": preds}


def subset(found: Dict[str, Any], scores: Scores, ids: List[str]) -> Dict[str, Any]:
    """FOUND (predictions in scores.ids order) for the texts IDS, in that order."""
    if not found.get("available"):
        return found
    where = dict(zip(scores.ids, range(scores.n)))
    rows_ = np.array([where[i] for i in ids], dtype=np.int64)
    return {**found, "predictions": {k: v[rows_] for k, v in found["predictions"].items()}}


# --------------------------------------------------------------------------- rows and verdict


def rows(found: Dict[str, Any], y: np.ndarray, pred: np.ndarray, resamples: int) -> List[Dict[str, Any]]:
    """One row per yardstick: accuracy (95% interval) and McNemar of the model against it
    (``model_only``: texts only the model gets right; ``yardstick_only``: only it)."""
    from orchestrator.results.metrics import accuracy_ci, mcnemar_pair

    model_correct = pred == y
    out = []
    for name, p in found["predictions"].items():
        correct = p == y
        mc = mcnemar_pair(model_correct, correct)
        out.append(
            {
                "name": name,
                "title": NAMES[name],
                "accuracy": float(correct.mean()),
                "accuracy_ci95": accuracy_ci(correct) if resamples > 0 else None,
                "correct": int(correct.sum()),
                "model_only": mc["a_only"],
                "yardstick_only": mc["b_only"],
                "accuracy_diff": mc["accuracy_diff"],
                "p_value": mc["p_value"],
            }
        )
    return out


ALPHA = 0.05


def verdict(rows_: List[Dict[str, Any]]) -> str:
    """The model judged against the yardsticks (McNemar at ALPHA), each claim only as far as
    a test made it: above the best; below every one; below one and above another
    ("between"); below one and no different from the rest; or below none and no different
    from the best (which is not "as good as": at a few hundred texts the test is weak)."""
    if not rows_:
        return "Not judged"
    best = max(rows_, key=lambda r: r["accuracy"])
    better = [r for r in rows_ if r["p_value"] < ALPHA and r["accuracy_diff"] > 0]
    worse = [r for r in rows_ if r["p_value"] < ALPHA and r["accuracy_diff"] < 0]
    if best in better:
        return "Beats the yardsticks"
    if len(worse) == len(rows_):
        return "Below the yardsticks"
    if worse:
        return "Between the yardsticks" if better else "Below a yardstick"
    return "No different from the best yardstick"
