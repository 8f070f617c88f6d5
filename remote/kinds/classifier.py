"""Discriminative sequence classifier over all classes: the upper-bound baseline.

Scratch: GPT-2 shape of ModelSpec with a classification head reading the hidden
state of the last non-pad token (``</s>``, which under causal attention has seen the
whole text).  HF init / pretrain checkpoint: AutoModelForSequenceClassification
(a fresh head on the pretrained body).  Scores are -log p(class | text), one per class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, GPT2ForSequenceClassification

from remote.kinds.hf import fit_vocab, from_config, from_pretrained, gpt2_config

masked = False
needs_labels = True  # trained on every class at once: train_loss takes labels=
compile_whole_loss = True  # see remote.train.compiled


def build_model(spec, tokenizer, pretrained=None, num_labels: int = 2) -> torch.nn.Module:
    if pretrained is None:
        config = gpt2_config(spec, tokenizer, num_labels=num_labels)
        model = from_config(GPT2ForSequenceClassification, config, spec)
    else:
        model = from_pretrained(
            AutoModelForSequenceClassification, pretrained, spec, num_labels=num_labels, ignore_mismatched_sizes=True
        )
    # GPT-2-style heads find the last real token through pad_token_id: it must be a
    # token that never occurs in a text (fit_vocab sets it from the tokenizer).
    fit_vocab(model, tokenizer)
    return model


def _log_probs(model, input_ids, attention_mask):
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    return F.log_softmax(logits.float(), dim=-1)


def train_loss(model, input_ids, attention_mask, generator=None, labels=None):
    if labels is None:
        raise ValueError("the classifier kind trains on labelled batches: pass labels=")
    logp = _log_probs(model, input_ids, attention_mask)
    return F.nll_loss(logp, labels), int(labels.numel())


def score_batch(model, input_ids, attention_mask, seeds, score_spec, tokenizer):
    """nll[i] is the list of -log p(c | text i) over the classes, in class-index order."""
    logp = _log_probs(model, input_ids, attention_mask)
    tokens = attention_mask.sum(dim=1).tolist()
    return (-logp).double().tolist(), [int(t) for t in tokens], [None] * len(tokens)
