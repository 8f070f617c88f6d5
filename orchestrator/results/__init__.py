"""Judging a fetched run on the laptop: scores (load, check, merge), metrics (pure numpy),
uncertainty, yardsticks, evaluate, report, plots (on request) and compare."""
