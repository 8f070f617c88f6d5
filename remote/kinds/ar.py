"""Autoregressive LM (GPT-2 family): exact NLL.

A text is encoded as ``<s> text </s>`` (GPT-2 inits use their <|endoftext|> for both).
The first token is given, not predicted, so

    NLL(x) = -sum_{i=1}^{n-1} log p(x_i | x_<i),   tokens = n - 1

i.e. the end marker </s> is predicted (it tells the model where the text stops) and
<s> is not.  The same rule holds for every class model, so differences are exact.

From scratch the model is :class:`remote.models.gpt.GPT` (plain torch: a job starts
without importing transformers); a pretrained init (a hub name or an HF folder) is
loaded with transformers' ``AutoModelForCausalLM``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from remote.models import gpt

masked = False
compile_whole_loss = True  # train_loss / score_batch trace whole: compiled with the model (remote.train)


def build_model(spec, tokenizer, pretrained=None) -> torch.nn.Module:
    if pretrained is None:
        return gpt.GPT(gpt.scratch_config(spec, tokenizer))
    from transformers import AutoModelForCausalLM  # pretrained inits only

    from remote.kinds.hf import fit_vocab, from_pretrained

    model = from_pretrained(AutoModelForCausalLM, pretrained, spec)
    fit_vocab(model, tokenizer)
    return model


save_model = gpt.save  # the plain GPT as its shape + state dict; an HF model with save_pretrained


def load_model(spec, tokenizer, folder: str) -> torch.nn.Module:
    """Inverse of :func:`save_model`: the checkpoint's shape, the spec's run-time choices."""
    shape = gpt.saved_shape(folder, len(tokenizer))
    if shape is None:
        return build_model(spec, tokenizer, folder)
    model = gpt.GPT(gpt.config_for(spec, **shape))
    model.load_state_dict(gpt.saved_state(folder))
    return model


def _token_nll(model, input_ids, attention_mask):
    """-log p of every next token, shape (batch, len - 1); 0 at padding.

    The cross-entropy runs in fp32 on the full (bf16) logits.  Padding is excluded with
    ignore_index rather than boolean selection: no host-device sync, and the shapes
    stay static for torch.compile.
    """
    logits = gpt.logits_of(model(input_ids=input_ids, attention_mask=attention_mask))[:, :-1]
    target = input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)
    nll = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="none"
    )
    return nll.view(target.shape)


def train_loss(model, input_ids, attention_mask, generator=None):
    nll = _token_nll(model, input_ids, attention_mask)
    n = attention_mask[:, 1:].sum()
    # n stays a tensor: train.py converts it only when it logs (one sync per interval).
    return nll.sum() / n.clamp(min=1), n


def score_batch(model, input_ids, attention_mask, seeds, score_spec, tokenizer):
    nll = _token_nll(model, input_ids, attention_mask).double().sum(dim=1)
    tokens = (attention_mask.sum(dim=1) - 1).tolist()
    return nll.tolist(), [int(t) for t in tokens], [None] * len(tokens)
