"""The estimator's own noise: how sure each class decision is, given the random draws an
estimating kind (MDLM) scored with.  Pure numpy over the merged scores, no I/O.

A kind that estimates by random draws writes each text's per-draw estimates, and draw j
of a text is the same random draw in every class model (common random numbers,
remote/score.py).  The decision between two classes then has a paired standard error:
the spread over j of the per-draw class difference (metrics.paired_margin_se), which is
what decides the class, not the per-class standard errors in score rows.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from orchestrator.results.metrics import CI_LEVEL, Z95, margin, not_significant, paired_margin_se


def paired_summary(score: np.ndarray, draws: Optional[np.ndarray], class_se: np.ndarray
                   ) -> Tuple[Optional[Dict[str, Any]], Optional[np.ndarray]]:
    """(metrics.json's ``paired`` section, each text's margin SE) - (None, None) for scores
    without draws (exact kinds: nothing is random)."""
    if draws is None:
        return None, None
    k = int(draws.shape[2])
    se = paired_margin_se(score, draws)
    if se is None:
        return {"draws": k, "level": CI_LEVEL, "z": Z95, "not_significant": None, "not_significant_n": None,
                "mean_margin_se": None, "median_margin_se": None, "mean_class_se": None, "class_se_ratio": None,
                "note": "one draw per text: no spread to estimate the noise from (score.mdlm_draws >= 2)"}, None
    flip = not_significant(margin(score), se)
    mean_se = float(se.mean())
    class_se = float(np.nanmean(class_se)) if not np.all(np.isnan(class_se)) else None
    return {
        "draws": k, "level": CI_LEVEL, "z": Z95,
        "not_significant": float(flip.mean()), "not_significant_n": int(flip.sum()),
        "mean_margin_se": mean_se, "median_margin_se": float(np.median(se)),
        "mean_class_se": class_se,
        "class_se_ratio": None if class_se is None or mean_se == 0 else class_se / mean_se,
    }, se
