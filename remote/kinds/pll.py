"""Kind ``mlm-pll``: a masked LM per class, scored by pseudo-log-likelihood.

PLL(x) = sum_l log p(x_l | x with only position l masked)   (Salazar et al. 2020)

Scoring masks each text token once and batches the L masked copies (``batch_size``
rows at a time); nll = -PLL, tokens = L, se = None (the score is deterministic: the
seeds are unused).  Like ``mdlm``, only text tokens are masked and scored: <s>, </s>
([CLS], [SEP]) stay visible and are not scored, padding is never attended.  PLL is
not a normalised likelihood (it over-rewards tokens that are easy to predict from
their neighbours, e.g. the pieces of multi-token words), but it is the standard way
to turn an MLM into a scorer, and every class model is scored the same way.

Training is standard BERT/RoBERTa MLM: each text token is chosen with probability
0.15; a chosen token is replaced by [MASK] 80% of the time, by a random token 10%,
and left unchanged 10% (the 80/10/10 recipe the pretrained RoBERTa/BERT checkpoints
were trained with, so fine-tuning continues their objective; the 10% unchanged also
teaches the model to predict tokens it can see, which PLL never asks for but does no
harm).  Loss = mean cross-entropy over the chosen tokens.  As in scoring, the
[MASK] logit is -inf: the answer is never [MASK], so no mass is wasted on it.
"""

from __future__ import annotations

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

MLM_PROB = 0.15
MASK_FRAC, RANDOM_FRAC = 0.8, 0.1  # of the chosen tokens; the remaining 0.1 stay as they are


def build_model(spec, tokenizer, pretrained: Optional[str]) -> MaskedLM:
    """The same backbones as ``mdlm``: from-scratch bidirectional transformer, or a
    Hugging Face masked LM (name or local folder)."""
    return build_masked_lm(spec, tokenizer, pretrained)


def save_model(model: MaskedLM, folder: str) -> None:
    save_masked_lm(model, folder)


def load_model(spec, tokenizer, folder: str) -> MaskedLM:
    return load_masked_lm(spec, tokenizer, folder)


def train_loss(model: MaskedLM, input_ids, attention_mask, generator: torch.Generator) -> Tuple[torch.Tensor, int]:
    """MLM loss (mean over the chosen tokens); n_tokens = non-pad tokens in the batch."""
    device = input_ids.device
    B, L = input_ids.shape
    content = model.content_mask(input_ids, attention_mask)

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device=generator.device).to(device)

    chosen = content & (rand(B, L) < MLM_PROB)
    action = rand(B, L)
    to_mask = chosen & (action < MASK_FRAC)
    to_random = chosen & (action >= MASK_FRAC) & (action < MASK_FRAC + RANDOM_FRAC)
    # Random replacements are drawn from the text tokens only: pad, <s>, [MASK]...
    # never occur inside a text, so they would be no "random word".
    allowed = torch.ones(model.vocab_size, dtype=torch.bool, device=device)
    allowed[model.special_ids.to(device)] = False
    allowed = allowed.nonzero(as_tuple=True)[0]
    pick = torch.randint(len(allowed), (B, L), generator=generator, device=generator.device).to(device)
    random_ids = allowed[pick]

    noisy = input_ids.masked_fill(to_mask, model.mask_token_id)
    noisy = torch.where(to_random, random_ids, noisy)

    nll = masked_token_nll(model, noisy, attention_mask, chosen, input_ids[chosen])
    loss = nll.sum() / max(int(chosen.sum()), 1)
    return loss, int(attention_mask.sum())


def score_batch(model: MaskedLM, input_ids, attention_mask, seeds: List[int], score_spec, tokenizer):
    """(nll = -PLL, tokens = L, se = None) per text.  ``seeds`` are not needed: PLL
    has no randomness.  The sum of the texts' lengths in rows, each one a copy of its
    text with one token masked, run ``score_spec.batch_size`` rows at a time and built
    chunk by chunk on the model's device (never all in memory)."""
    if tokenizer is not None and tokenizer.mask_token_id != model.mask_token_id:
        raise ValueError("tokenizer and model disagree on the mask token id")
    device = model_device(model)
    ids_dev, attn_dev = input_ids.to(device), attention_mask.to(device)
    input_ids, attention_mask = input_ids.cpu(), attention_mask.cpu()
    B = input_ids.shape[0]
    content = model.content_mask(input_ids, attention_mask)
    n_text = content.sum(dim=1)

    # Row r masks position pos[r] of text text_of[r].
    text_of, pos = content.nonzero(as_tuple=True)
    lengths = attention_mask.sum(dim=1)[text_of]

    def build(rows, width):
        t, p = text_of[rows].to(device), pos[rows].to(device)
        targets = ids_dev[t, :width]
        sel = torch.zeros(len(rows), width, dtype=torch.bool, device=device)
        sel[torch.arange(len(rows), device=device), p] = True
        return targets.masked_fill(sel, model.mask_token_id), attn_dev[t, :width], sel, targets

    sums = sum_masked_nll(model, lengths, build, score_spec.batch_size)
    nll = torch.zeros(B, dtype=torch.float64).index_add_(0, text_of, sums)
    return [float(x) for x in nll], [int(n) for n in n_text], [None] * B
