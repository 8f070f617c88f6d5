"""Write configs/data/tiny_sentiment.jsonl: a small synthetic two-class review set.

Deterministic (seeded): rerunning it rewrites the same bytes.  Each text mixes shared
movie vocabulary with words typical of its class (0 = negative, 1 = positive), plus a
little cross-class noise ("not bad", a stray word), so that a tiny model separates the
classes well but not trivially.  Some texts carry IMDB-style ``<br />`` markup.

    python bench/make_tiny_data.py [--out PATH] [--per-class 300] [--seed 0]
                                   [--unlabelled-out PATH] [--unlabelled 400]

It also writes tiny_unlabelled.jsonl beside it (configs/data/ by default): texts of both classes without labels,
from their own random stream (the labelled file's bytes do not depend on it), for
experiments and studies that pretrain (data.unlabelled_path).
"""

from __future__ import annotations

import argparse
import json
import os
import random

SUBJECTS = [
    "the movie",
    "this film",
    "the story",
    "the plot",
    "the acting",
    "the cast",
    "the script",
    "the ending",
    "the director's work",
    "the soundtrack",
    "the dialogue",
    "the second half",
    "the lead actor",
    "the cinematography",
    "the pacing",
]
LINKS = ["was", "felt", "seemed", "is", "turned out", "came across as", "remained", "looked"]
WORDS = {
    "1": [
        "wonderful",
        "brilliant",
        "moving",
        "delightful",
        "superb",
        "charming",
        "gripping",
        "beautiful",
        "hilarious",
        "touching",
        "excellent",
        "fresh",
        "memorable",
        "powerful",
        "clever",
        "lovely",
    ],
    "0": [
        "boring",
        "awful",
        "dull",
        "terrible",
        "clumsy",
        "tedious",
        "predictable",
        "lifeless",
        "bland",
        "painful",
        "weak",
        "messy",
        "forgettable",
        "silly",
        "flat",
        "annoying",
    ],
}
CLOSERS = {
    "1": [
        "I loved every minute.",
        "Highly recommended.",
        "I would watch it again.",
        "A real gem.",
        "Ten out of ten.",
        "Go and see it.",
        "It made my day.",
    ],
    "0": [
        "I want my money back.",
        "Avoid it.",
        "A waste of time.",
        "I nearly fell asleep.",
        "Two out of ten.",
        "Skip this one.",
        "I walked out early.",
    ],
}
FILLERS = [
    "I saw it last weekend.",
    "My friends picked it.",
    "It runs about two hours.",
    "The trailer promised a lot.",
    "It is based on a novel.",
    "The theatre was half full.",
]


def review(rng: random.Random, label: str) -> str:
    other = "0" if label == "1" else "1"
    parts = []
    if rng.random() < 0.5:
        parts.append(rng.choice(FILLERS))
    for _ in range(rng.randint(2, 4)):
        # About one sentence in ten uses the other class's word: noise the model must outvote.
        words = WORDS[other] if rng.random() < 0.1 else WORDS[label]
        adj = rng.choice(words)
        if rng.random() < 0.3:
            adj = f"{rng.choice(['really', 'quite', 'truly', 'rather', 'very'])} {adj}"
        parts.append(f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(LINKS)} {adj}.")
    parts.append(rng.choice(CLOSERS[label]))
    sep = "<br /><br />" if rng.random() < 0.2 else " "
    return sep.join(parts)


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "configs", "data", "tiny_sentiment.jsonl"))
    ap.add_argument("--per-class", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--unlabelled-out", default="", help="default: tiny_unlabelled.jsonl beside --out")
    ap.add_argument("--unlabelled", type=int, default=400)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for i in range(args.per_class):
        for label in ("0", "1"):
            rows.append(
                {"id": f"tiny/{'pos' if label == '1' else 'neg'}/{i}", "text": review(rng, label), "label": int(label)}
            )
    with open(args.out, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(f"wrote {len(rows)} texts to {os.path.normpath(args.out)} ({os.path.getsize(args.out)} bytes)")
    if not args.unlabelled_out:
        args.unlabelled_out = os.path.join(os.path.dirname(os.path.abspath(args.out)), "tiny_unlabelled.jsonl")
    unlabelled_rng = random.Random(f"unlabelled-{args.seed}")
    with open(args.unlabelled_out, "w", encoding="utf-8") as f:
        for i in range(args.unlabelled):
            label = unlabelled_rng.choice(("0", "1"))
            f.write(json.dumps({"id": f"tiny/unsup/{i}", "text": review(unlabelled_rng, label)}) + "\n")
    print(f"wrote {args.unlabelled} unlabelled texts to {os.path.normpath(args.unlabelled_out)}")


if __name__ == "__main__":
    main()
