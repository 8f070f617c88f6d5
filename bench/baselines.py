"""Bag-of-words baselines on exactly the split an experiment's jobs use.

    python bench/baselines.py configs/experiments/imdb-scratch-ar.yaml [--set data.max_per_class=2000 ...]

Multinomial Naive Bayes (unigram, uni+bigram counts) and TF-IDF uni+bigram logistic
regression, trained on the experiment's training texts (after caps) and scored on its
test texts: the bars a per-class generative classifier has to clear.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.config.experiments import load  # noqa: E402
from orchestrator.config.project import Project  # noqa: E402
from remote.data import load_splits  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import MultinomialNB

    project = Project.find(REPO)
    exp, _ = load(project, args.experiment, args.overrides)
    spec = exp.data
    for key in ("path", "test_path", "unlabelled_path"):
        value = getattr(spec, key)
        if value and spec.source == "file" and not Path(value).is_absolute():
            setattr(spec, key, str(project.root / value))
    splits = load_splits(spec, log=lambda *_: None)
    xtr, ytr = [e.text for e in splits.train], [e.label for e in splits.train]
    xte, yte = [e.text for e in splits.test], [e.label for e in splits.test]
    print(f"{exp.name}: {len(xtr)} train / {len(xte)} test texts, classes {splits.classes}")
    models = {
        "multinomial NB, unigram counts": (CountVectorizer(), MultinomialNB()),
        "multinomial NB, uni+bigram": (CountVectorizer(ngram_range=(1, 2)), MultinomialNB()),
        "TF-IDF uni+bigram logistic regression": (
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
            LogisticRegression(C=10, max_iter=2000),
        ),
    }
    print("| baseline | accuracy | seconds |\n|---|---|---|")
    for name, (vec, clf) in models.items():
        start = time.time()
        clf.fit(vec.fit_transform(xtr), ytr)
        acc = (clf.predict(vec.transform(xte)) == __import__("numpy").array(yte)).mean()
        print(f"| {name} | {acc:.2%} | {time.time() - start:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
