"""The figures behind tests/remote/test_paired_se.py, printed: how well the paired SE of an
MDLM margin is calibrated against exact margins.

    python bench/paired_se_calibration.py

Two tiny random MDLM "class models" score the test's 6 texts under 150 score seeds with
K = 16 draws; z = (margin - exact margin) / paired SE, the exact margin by enumerating
every mask set.  Prints z's mean and sd (Student's t with K - 1 d.f. has sd 1.074), the
share beyond 1.96 and beyond the evaluation's critical t, and how much bigger the per-class
SEs combined as if independent are.  The test asserts bounds on the same numbers; seeded,
so the same figures every run.  CPU, a few seconds.
"""

from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "remote"))


def main() -> None:
    import torch
    from test_mdlm import encode, exact_nelbo, make_tokenizer, tiny_model
    from test_paired_se import TEXTS

    from orchestrator.results.metrics import decision_critical, paired_margin_se
    from remote.kinds import mdlm
    from remote.spec import ScoreSpec

    torch.set_num_threads(1)
    tok = make_tokenizer()
    a, b = tiny_model(tok, seed=3), tiny_model(tok, seed=4)
    ids, attn = encode(tok, TEXTS)
    n = len(TEXTS)
    exact = np.array(
        [exact_nelbo(a, ids[i][attn[i].bool()]) - exact_nelbo(b, ids[i][attn[i].bool()]) for i in range(n)]
    )
    K, S = 16, 150
    seeds = [1000 * s + i for s in range(S) for i in range(n)]
    spec = ScoreSpec(batch_size=1024, mdlm_draws=K)
    with torch.inference_mode():
        ra = mdlm.score_batch(a, ids.repeat(S, 1), attn.repeat(S, 1), seeds, spec, tok)
        rb = mdlm.score_batch(b, ids.repeat(S, 1), attn.repeat(S, 1), seeds, spec, tok)
    draws = np.stack([np.array(ra[3]), np.array(rb[3])], axis=1)
    score = -np.stack([np.array(ra[0]), np.array(rb[0])], axis=1)
    se = paired_margin_se(score, draws)
    z = (score[:, 1] - score[:, 0] - np.tile(exact, S)) / se
    crit = decision_critical(np.array([K]))[0]
    naive = np.hypot(np.array(ra[2]), np.array(rb[2]))
    print(f"{n} texts x {S} seeds, K = {K}")
    print(f"z: mean {z.mean():.3f}, sd {z.std():.3f} (Student t with {K - 1} d.f.: {np.sqrt((K - 1) / (K - 3)):.3f})")
    beyond_z, beyond_t = np.mean(np.abs(z) > 1.959963984540054), np.mean(np.abs(z) > crit)
    print(f"beyond 1.96: {beyond_z:.1%}; beyond t = {crit:.2f}: {beyond_t:.1%}")
    print(f"per-class SEs combined as if independent / paired SE: {(naive / se).mean():.2f}x")


if __name__ == "__main__":
    main()
