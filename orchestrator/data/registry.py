"""The data sets `orch data get NAME` knows: each writes its files under data/NAME/."""

from __future__ import annotations

KNOWN = {"imdb": "Large Movie Review Dataset v1.0 -> data/imdb/{train,test,unsup}.jsonl.gz (docs/DATA.md)"}
