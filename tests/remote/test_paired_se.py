"""Calibration of the paired standard error of a class difference (issue 13, item 1).

Two tiny random MDLM "class models" score the same texts under many score seeds.  For
each (text, seed) the controller's paired SE (orchestrator.results.metrics) of the
margin, computed from the per-draw values score_batch returns, should make
z = (margin - exact margin) / SE close to N(0, 1): with K draws the SE is itself
estimated from K values, so z follows Student's t with K - 1 degrees of freedom
(std sqrt((K-1)/(K-3)), 1.07 for K = 16).  The exact margin comes from enumerating
every mask set (test_mdlm.exact_nelbo).  Seeded: the same z's every run.
"""

from __future__ import annotations

import numpy as np
import torch
from test_mdlm import encode, exact_nelbo, make_tokenizer, one_thread, tiny_model  # noqa: F401 (fixture)

from orchestrator.results.metrics import decision_critical, paired_margin_se
from remote.kinds import mdlm
from remote.spec import ScoreSpec

TEXTS = [
    "w1 w2 w3 w4 w5 w6",
    "w7 w8 w9 w10 w11",
    "w10 w11 w12 w13 w14 w15 w1",
    "w3 w3 w5 w7",
    "w0 w9 w2 w8 w4 w6",
    "w5 w1 w12 w14 w2",
]


def test_paired_se_is_calibrated_against_repeated_seeds():
    tok = make_tokenizer()
    a, b = tiny_model(tok, seed=3), tiny_model(tok, seed=4)  # two "class models"
    ids, attn = encode(tok, TEXTS)
    n = len(TEXTS)
    # margin = score(class b) - score(class a) = nll_a - nll_b; exact, pads stripped
    exact = np.array(
        [exact_nelbo(a, ids[i][attn[i].bool()]) - exact_nelbo(b, ids[i][attn[i].bool()]) for i in range(n)]
    )
    K, S = 16, 150
    seeds = [1000 * s + i for s in range(S) for i in range(n)]  # S independent score seeds per text
    spec = ScoreSpec(batch_size=1024, mdlm_draws=K)
    with torch.inference_mode():
        ra = mdlm.score_batch(a, ids.repeat(S, 1), attn.repeat(S, 1), seeds, spec, tok)
        rb = mdlm.score_batch(b, ids.repeat(S, 1), attn.repeat(S, 1), seeds, spec, tok)
    draws = np.stack([np.array(ra[3]), np.array(rb[3])], axis=1)  # (S n, 2, K): class order (a, b)
    score = -np.stack([np.array(ra[0]), np.array(rb[0])], axis=1)
    se = paired_margin_se(score, draws)
    margin = score[:, 1] - score[:, 0]
    z = (margin - np.tile(exact, S)) / se
    t_std = np.sqrt((K - 1) / (K - 3))
    assert abs(z.mean()) < 0.12, z.mean()
    assert 0.85 * t_std < z.std() < 1.15 * t_std, z.std()
    outside = float(np.mean(np.abs(z) > 1.959963984540054))
    assert 0.025 < outside < 0.10, outside  # t_15: 6.9% beyond 1.96
    # The evaluation's rule (Student's t at K - 1 d.f.) is the one that holds 5%.
    t_outside = float(np.mean(np.abs(z) > decision_critical(np.array([K]))[0]))
    assert 0.025 < t_outside < 0.075, t_outside
    for i in range(n):  # no text is off on its own
        zi = z[i::n]
        assert abs(zi.mean()) < 0.35 and 0.7 < zi.std() < 1.5, (i, zi.mean(), zi.std())
    # The per-class SEs, combined as if the classes' draws were independent, count the
    # noise the shared draws cancel: they overstate the difference's noise.
    naive = np.hypot(np.array(ra[2]), np.array(rb[2]))
    assert (naive / se).mean() > 1.1  # 1.21 here
