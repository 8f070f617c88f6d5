"""Checkpoints of a job: ``ckpt/last.pt`` to resume training, ``ckpt/final/`` when done.

``last.pt`` holds everything needed to continue bit-for-bit: model and optimizer
state, the step (the learning rate is a pure function of it, see train.lr_at), the RNG
states and the resolved config it was written under.  It is written to a temp file
and renamed, so a kill mid-write leaves the previous checkpoint intact.

``final/`` is the trained model + tokenizer, the start of the class jobs (when it is a
pretrain job's) and what a relaunched job scores from without retraining.  HF models
are saved with ``save_pretrained`` (reloaded by passing the folder to the kind's
``build_model``); other models as a state dict (reloaded into a freshly built model).
The tokenizer is saved in HF's format (tokenizer.json, tokenizer_config.json), so
``AutoTokenizer`` reads it; a scratch BPE adds ``orch_tokenizer.json``, by which
``tokenizer.load`` rebuilds it without importing transformers.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict, Optional

import torch

from remote import tokenizer as tokenizers
from remote.errors import JobError
from remote.files import atomic_write_json

INFO = "orch_final.json"


def last_path(job_dir: str) -> str:
    return os.path.join(job_dir, "ckpt", "last.pt")


def final_dir(job_dir: str) -> str:
    return os.path.join(job_dir, "ckpt", "final")


def has_final(job_dir: str) -> bool:
    return os.path.isfile(os.path.join(final_dir(job_dir), INFO))


def save_last(job_dir: str, state: Dict[str, Any]) -> None:
    path = last_path(job_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_last(job_dir: str, config: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The resumable state, or None; refuses a checkpoint written under another config."""
    path = last_path(job_dir)
    if not os.path.isfile(path):
        return None
    # weights_only=False: the file holds RNG states and plain dicts we wrote ourselves.
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("config") != config:
        raise JobError(
            f"{path} was written under a different config than this run's; delete it"
            " to start this job's training over, or restore the original run.yaml"
        )
    return state


def rng_state(device: torch.device, generator: torch.Generator) -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Dict[str, Any], device: torch.device, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_final(job_dir: str, model, tokenizer, kind, info: Dict[str, Any]) -> str:
    """Write ``ckpt/final/`` whole or not at all (temp folder, then rename)."""
    final = final_dir(job_dir)
    tmp = f"{final}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    if hasattr(kind, "save_model"):
        kind.save_model(model, tmp)
        fmt = "kind"
    elif hasattr(model, "save_pretrained"):
        model.save_pretrained(tmp)
        fmt = "hf"
    else:
        torch.save(model.state_dict(), os.path.join(tmp, "model.pt"))
        fmt = "state_dict"
    tokenizers.save(tokenizer, tmp)
    atomic_write_json(os.path.join(tmp, INFO), {**info, "format": fmt})
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def read_info(folder: str) -> Dict[str, Any]:
    path = os.path.join(folder, INFO)
    if not os.path.isfile(path):
        raise JobError(f"{folder}: not a finished checkpoint (no {INFO}); did its training job complete?")
    with open(path) as f:
        return json.load(f)


def load_final(folder: str, kind, spec, **build_kwargs):
    """(model, tokenizer) from a ``final/`` folder written by ``save_final``."""
    info = read_info(folder)
    tok = tokenizers.load(folder)
    if info["format"] == "kind":
        model = kind.load_model(spec, tok, folder, **build_kwargs)
    elif info["format"] == "hf":
        model = kind.build_model(spec, tok, folder, **build_kwargs)
    else:
        # The architecture comes from the same spec/init the checkpoint was trained from.
        base = None if spec.init == "scratch" else spec.init
        model = kind.build_model(spec, tok, base, **build_kwargs)
        model.load_state_dict(torch.load(os.path.join(folder, "model.pt"), map_location="cpu"))
    return model, tok
