"""Discriminative sequence classifier over all classes: the upper-bound baseline.

Scratch: the plain-torch GPT-2 of ModelSpec's shape with a classification head reading
the hidden state of the last real token (``</s>``, which under causal attention has
seen the whole text): :class:`remote.models.gpt.GPTClassifier`.  From the ar pretrain
job's checkpoint: that GPT as the body, a fresh head.  HF init:
AutoModelForSequenceClassification (a fresh head on the pretrained body).  Scores are
-log p(class | text), one per class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from remote.errors import JobError
from remote.models import gpt

masked = False
needs_labels = True  # trained on every class at once: train_loss takes labels=
compile_whole_loss = True  # see remote.train.compiled


def build_model(spec, tokenizer, pretrained=None, num_labels: int = 2) -> torch.nn.Module:
    if pretrained is None:
        return gpt.GPTClassifier(gpt.scratch_config(spec, tokenizer), num_labels)
    from transformers import AutoModelForSequenceClassification  # pretrained inits only

    from remote.kinds.hf import fit_vocab, from_pretrained

    model = from_pretrained(
        AutoModelForSequenceClassification, pretrained, spec, num_labels=num_labels, ignore_mismatched_sizes=True
    )
    # GPT-2-style heads find the last real token through pad_token_id: it must be a
    # token that never occurs in a text (fit_vocab sets it from the tokenizer).
    fit_vocab(model, tokenizer)
    return model


save_model = gpt.save  # GPTClassifier as its shape + state dict; an HF model with save_pretrained


def load_model(spec, tokenizer, folder: str, num_labels: int = 2) -> torch.nn.Module:
    """A classifier's own checkpoint, or the ar pretrain job's GPT as the body of a new one."""
    shape = gpt.saved_shape(folder, len(tokenizer))
    if shape is None:
        return build_model(spec, tokenizer, folder, num_labels=num_labels)
    own = "num_labels" in shape
    if own and shape.pop("num_labels") != num_labels:
        raise JobError(f"{folder}: a classifier for a different number of classes than {num_labels}")
    model = gpt.GPTClassifier(gpt.config_for(spec, **shape), num_labels)
    (model if own else model.transformer).load_state_dict(gpt.saved_state(folder))
    return model


def _log_probs(model, input_ids, attention_mask):
    logits = gpt.logits_of(model(input_ids=input_ids, attention_mask=attention_mask))
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
