"""Model kinds: one module per kind, all with the same small interface.

A kind module provides

    masked: bool                 needs a mask token (MDLM, PLL)
    build_model(spec: ModelSpec, tokenizer, pretrained: str | None) -> torch.nn.Module
        pretrained: a Hugging Face name or a local HF folder (spec.init, or the pretrain
        job's ckpt/final); None builds spec's from-scratch config.
    train_loss(model, input_ids, attention_mask, generator) -> (loss, n_tokens)
        loss: scalar tensor, mean over the predicted tokens; n_tokens: how many
        (an int, or a 0-dim tensor to spare a host-device sync per batch).
    score_batch(model, input_ids, attention_mask, seeds, score_spec, tokenizer)
        -> (nll: list[float], tokens: list[int], se: list[float | None][, draws: list[list[float]]])
        draws (kinds scored with random draws: remote/spec.py KINDS, i.e. mdlm): each text's per-draw
        estimates, draw j the same random draw in every class model; nll is their mean.
        Called under torch.inference_mode (and bf16 autocast on CUDA); log-softmax and
        cross-entropy are computed in fp32.  seeds[i] = a stable hash of (text id,
        score.seed), so every class model sees the same random draws for a text.

optionally

    compile_whole_loss: bool     train_loss and score_batch trace without data-dependent
        shapes, so train.compile compiles them with the model (remote.train.compiled)
    encode(tokenizer, texts, max_len) -> list[list[int]]   (default: remote.tokenizer.encode)
    save_model(model, folder) / load_model(spec, tokenizer, folder)
        (default: save_pretrained/from_pretrained for HF models, else a state dict,
        see remote.checkpoint)

The ``classifier`` kind differs: it trains on all classes at once, so its
``train_loss`` takes ``labels=`` and ``score_batch`` returns one list of
-log p(class | text) per text (``needs_labels = True``).

Modules are imported lazily, so a kind whose module is missing or broken does not stop
the others from running.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_MODULES = {
    "ar": "remote.kinds.ar",
    "classifier": "remote.kinds.classifier",
    "mdlm": "remote.kinds.mdlm",
    "mlm-pll": "remote.kinds.pll",
}


class KindError(ValueError):
    """The configured model kind cannot be used on this host."""


def get_kind(name: str) -> ModuleType:
    if name not in _MODULES:
        raise KindError(f"model.kind: unknown kind {name!r} (known: {', '.join(_MODULES)})")
    try:
        return importlib.import_module(_MODULES[name])
    except ModuleNotFoundError as e:
        if e.name == _MODULES[name]:
            raise KindError(f"model.kind {name!r}: {_MODULES[name]} is not in this code snapshot") from None
        raise
