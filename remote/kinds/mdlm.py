"""Kind ``mdlm``: a masked (absorbing-state) diffusion LM per class, scored by its NELBO.

Maths (Sahoo et al. 2024; LLaDA's estimator; notes/likelihood-classifier-facts.md)
--------------------------------------------------------------------------------
Forward process: every text token is independently replaced by [MASK] with
probability 1 - alpha_t.  Log-linear schedule: alpha_t = 1 - (1 - eps) t, eps = 1e-3,
so a token is masked with probability pi(t) = (1 - eps) t.

SUBS parameterisation: the denoiser never predicts [MASK] (its logit is -inf) and an
unmasked token is copied, so only masked positions carry loss.  The continuous-time
negative ELBO is then

    NELBO(x) = E_t [ w(t) * sum_{l masked in x_t} -log p(x_l | x_t) ],
    w(t) = -alpha'_t / (1 - alpha_t) = 1 / t,      t ~ U[eps, 1].

Equivalently (change variables to k = number of masked tokens), with L text tokens:

    NELBO(x) = E_{k ~ U{1..L}} E_{M: |M| = k} [ (L / k) * sum_{l in M} -log p(x_l | x_M) ]
             = sum_{M != {}} (k-1)! (L-k)! / L! * sum_{l in M} -log p(x_l | x_M),

the exact value the tests enumerate for a short text.  The k form has lower variance:
every draw masks at least one token and the weight L/k is at most L, whereas 1/t
reaches 1/eps for the rare draws that mask one token at small t.  (The t form with
eps > 0 leaves out the ends t < eps and pi > 1 - eps; its bias is O(eps) relative.)

What is scored
--------------
"Text tokens" are the non-pad tokens that are not special (<s>, </s>, [CLS], [SEP]);
the specials are never masked nor scored and always visible, and ``tokens`` = L.
Padding is never masked, scored or attended, so a text's score does not depend on
the batch it came in.  The estimate is of -log p(x | length): the model is told how
many tokens to fill in, as every masked diffusion LM is.

Training: one t per text, stratified across the batch ("antithetic" sampling in the
reference: t_i = eps + (1 - eps) * ((u + i / B) mod 1), one u per batch), loss =
sum over texts of w(t_i) * masked NLL, divided by the batch's non-pad token count
(the reference's per-token normalisation).

Scoring: K = score.mdlm_draws draws per text, evenly spaced strata with ONE random
offset per text: k_j = 1 + floor((j + u) L / K) (``mdlm_stratify: k``) or
t_j = eps + (1 - eps) (j + u) / K (``mdlm_stratify: t``), j = 0..K-1, each with its own
random mask.  With u ~ U[0, 1), (j + u) / K for a random j is uniform on [0, 1), so
every draw has the right marginal and the mean of the K weighted losses is an
unbiased NELBO estimate (for k: the K strata hit each k in 1..L equally often on
average, K/L times); its standard error is the sample standard
deviation over the K draws / sqrt(K) -- conservative, since the evenly spaced strata
make the mean less variable than K independent draws.  ALL randomness for text i
(u and the masks) comes from a generator seeded with ``seeds[i]``, which is the same
for every class model: every class model is asked about exactly the same masked
copies (common random numbers), so the class difference is not drowned in sampling
noise (Li et al. 2023).
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch

from remote.models import (
    MaskedLM,
    build_masked_lm,
    load_masked_lm,
    masked_token_nll,
    model_device,
    save_masked_lm,
    sum_masked_nll,
)

masked = True  # the tokenizer must have a [MASK] token

EPS = 1e-3  # log-linear schedule: alpha_t = 1 - (1 - EPS) t


def build_model(spec, tokenizer, pretrained: Optional[str]) -> MaskedLM:
    """A bidirectional backbone; for ``kuleshov-group/mdlm-owt`` (trust_remote_code)
    the checkpoint's raw logits get the SUBS mask logit of -inf in the loss, not here."""
    return build_masked_lm(spec, tokenizer, pretrained)


def save_model(model: MaskedLM, folder: str) -> None:
    save_masked_lm(model, folder)


def load_model(spec, tokenizer, folder: str) -> MaskedLM:
    return load_masked_lm(spec, tokenizer, folder)


def _rand(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=generator, device=generator.device)


# --------------------------------------------------------------------- training ----
def train_loss(model: MaskedLM, input_ids, attention_mask, generator: torch.Generator) -> Tuple[torch.Tensor, int]:
    """Continuous-time NELBO of a batch, per non-pad token; returns (loss, n_tokens).

    ``n_tokens`` is the number of non-pad tokens (the normaliser, and what the loop
    counts for tokens/s).
    """
    device = input_ids.device
    B, L = input_ids.shape
    content = model.content_mask(input_ids, attention_mask)

    # Antithetic (stratified) t: B evenly spaced points with one shared random offset.
    u = _rand(generator, 1)
    s = (u + torch.arange(B, device=u.device) / B) % 1.0
    t = (EPS + (1.0 - EPS) * s).to(device)  # [B], in [eps, 1)
    p_mask = (1.0 - EPS) * t  # 1 - alpha_t

    noise = _rand(generator, B, L).to(device)
    masked_pos = content & (noise < p_mask[:, None])
    noisy = input_ids.masked_fill(masked_pos, model.mask_token_id)

    nll = masked_token_nll(model, noisy, attention_mask, masked_pos, input_ids[masked_pos])
    weight = (1.0 / t)[masked_pos.nonzero(as_tuple=True)[0]]  # w(t) of each masked token's text
    n_tokens = int(attention_mask.sum())
    loss = (weight * nll).sum() / max(n_tokens, 1)
    return loss, n_tokens


# ---------------------------------------------------------------------- scoring ----
def draw_masks(n: int, draws: int, seed: int, stratify: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """The K masks of one text with ``n`` text tokens, from ``seed`` alone.

    Returns (mask [K, n] bool, weight [K] float64) such that
    mean_j weight_j * sum_{l in mask_j} -log p(x_l | x with mask_j) estimates NELBO(x).
    Depends only on (n, draws, seed, stratify): never on the batch, the padding or the
    model, which is what makes the draws common to all class models.
    """
    g = torch.Generator().manual_seed(int(seed) % (2**63))
    u = float(torch.rand(1, generator=g, dtype=torch.float64))
    strata = (torch.arange(draws, dtype=torch.float64) + u) / draws  # evenly spaced in [0, 1)
    keys = torch.rand(draws, n, generator=g)
    if n == 0:
        return torch.zeros(draws, 0, dtype=torch.bool), torch.zeros(draws, dtype=torch.float64)
    if stratify == "k":
        # k_j = 1 + floor(s_j n) in {1..n}; mask the k_j positions with the smallest
        # keys, i.e. a uniformly random subset of size k_j.
        k = (1 + torch.floor(strata * n)).long().clamp_(1, n)
        rank = keys.argsort(dim=1).argsort(dim=1)
        mask = rank < k[:, None]
        weight = n / k.double()
    elif stratify == "t":
        t = EPS + (1.0 - EPS) * strata
        mask = keys.double() < ((1.0 - EPS) * t)[:, None]
        weight = 1.0 / t
    else:
        raise ValueError(f"score.mdlm_stratify must be 'k' or 't', got {stratify!r}")
    return mask, weight


def score_batch(model: MaskedLM, input_ids, attention_mask, seeds: List[int], score_spec, tokenizer):
    """NELBO estimate per text: (nll, tokens, se, draws) lists, one entry per row of the
    batch; ``draws[i]`` holds text i's K per-draw estimates (nll[i] is their mean).

    The K masked copies of the B texts are B*K rows, run through the model
    ``score_spec.batch_size`` rows at a time (the K copies of a text have its length,
    so chunks carry little padding).  The draws are made on the CPU from each text's
    seed; the rows themselves are built on the model's device, chunk by chunk.
    """
    if tokenizer is not None and tokenizer.mask_token_id != model.mask_token_id:
        raise ValueError("tokenizer and model disagree on the mask token id")
    K = int(score_spec.mdlm_draws)
    if K < 1:
        raise ValueError("score.mdlm_draws must be at least 1")
    device = model_device(model)
    ids_dev, attn_dev = input_ids.to(device), attention_mask.to(device)
    input_ids, attention_mask = input_ids.cpu(), attention_mask.cpu()
    B, L = input_ids.shape
    content = model.content_mask(input_ids, attention_mask)
    n_text = content.sum(dim=1).tolist()

    # Row r = i * K + j is draw j of text i.
    select = torch.zeros(B, K, L, dtype=torch.bool)
    weights = torch.zeros(B, K, dtype=torch.float64)
    for i in range(B):
        mask, w = draw_masks(n_text[i], K, seeds[i], score_spec.mdlm_stratify)
        select[i][:, content[i].nonzero(as_tuple=True)[0]] = mask
        weights[i] = w
    select = select.view(B * K, L)
    text_of = torch.arange(B).repeat_interleave(K)
    lengths = attention_mask.sum(dim=1).repeat_interleave(K)

    def build(rows, width):
        t = text_of[rows].to(device)
        sel = select[rows, :width].to(device)
        targets = ids_dev[t, :width]
        return targets.masked_fill(sel, model.mask_token_id), attn_dev[t, :width], sel, targets

    sums = sum_masked_nll(model, lengths, build, score_spec.batch_size, active=select.any(dim=1))

    estimates = weights * sums.view(B, K)  # [B, K]: one NELBO estimate per draw
    mean = estimates.mean(dim=1)
    se = estimates.std(dim=1, correction=1) / math.sqrt(K) if K > 1 else None
    nll_out = [float(x) for x in mean]
    se_out = [float(x) for x in se] if se is not None else [None] * B
    # Draw j of a text is the same masked copy in every class model, so the controller
    # pairs them: the spread of the per-draw class difference is the decision's noise.
    return nll_out, [int(n) for n in n_text], se_out, estimates.tolist()
