"""The training loop: flat and readable, in the spirit of nanoGPT's train.py.

One optimizer step = ``grad_accum`` micro-batches of ``batch_size`` texts.  AdamW with
decoupled weight decay on matrices only, linear warmup then cosine decay to
``lr * min_lr_ratio``, gradient clipping, bf16 autocast on CUDA (fp32 on CPU), optional
torch.compile.  Batches are length-bucketed: each epoch the texts are shuffled (seeded),
cut into chunks of 64 batches, sorted by length inside a chunk and split into batches,
so a batch holds texts of similar length (little padding) while the order stays random.

Everything random is seeded, so a CPU run is deterministic, and a run resumed from
``ckpt/last.pt`` continues exactly where the checkpoint was taken.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import torch

from remote import checkpoint
from remote.errors import JobError
from remote.files import append_jsonl, stable_seed
from remote.jobstate import is_gpu
from remote.optim import AdamW

BUCKET_BATCHES = 64  # batches per length-sorted chunk: bigger = less padding, less randomness


@dataclass
class Texts:
    """Encoded texts (token ids, framing included) and, for the classifier, class indices."""

    ids: List[List[int]]
    labels: Optional[List[int]] = None

    @property
    def n_tokens(self) -> int:
        return sum(len(x) for x in self.ids)


# ---------------------------------------------------------------- device / precision


def given_gpus() -> str:
    """The GPUs the job was given (the wrapper's GPU queue or Slurm set CUDA_VISIBLE_DEVICES), or ""."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return value if is_gpu(value) else ""


def cpu_fallback_note(name: str) -> Optional[str]:
    """train.device 'auto' on a job that was given a GPU torch cannot use: the job still runs
    (on the CPU), but says so - in its log, its progress lines and its manifest - instead of
    looking like a GPU job.  None when there is nothing to say."""
    gpus = given_gpus()
    if name != "auto" or not gpus or torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        why = f"torch {torch.__version__} is a CPU build (no CUDA)"
    else:
        why = f"torch {torch.__version__} (CUDA {torch.version.cuda}) cannot see it"
        try:
            torch.cuda.init()
        except Exception as exc:  # noqa: BLE001 - its words are the diagnosis (no driver, too old...)
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            why += f": {first}" if first else ""
    return (
        f"this job was given GPU {gpus} (CUDA_VISIBLE_DEVICES) but {why}; it runs on the CPU. "
        "Fix: `orch bootstrap HOST` installs the CUDA build of torch for the host's GPUs "
        "(`--dry-run` shows which; an env that takes the host's preinstalled torch, such as `venv`, gets "
        "none: bootstrap `--env default`), or set train.device: cuda to fail instead of falling back"
    )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise JobError(
            "train.device is 'cuda' but no CUDA GPU is visible to this job"
            f" (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')!r})"
        )
    if name not in ("cpu", "cuda"):
        raise JobError(f"train.device: expected auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def autocast(device: torch.device, dtype: str):
    """bf16 autocast on CUDA by default (weights and optimizer stay fp32), none on CPU."""
    use_bf16 = dtype == "bf16" or (dtype == "auto" and device.type == "cuda")
    if dtype not in ("auto", "bf16", "fp32"):
        raise JobError(f"train.dtype: expected auto, fp32 or bf16, got {dtype!r}")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def setup_backends(device: torch.device) -> None:
    if device.type == "cuda":
        # TF32 for whatever still runs in fp32 (the loss, the optimizer): same speed-up
        # nanoGPT takes, far below the noise of bf16 training.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def compiled(fn, kind, model: torch.nn.Module, enabled: bool, **compile_kw):
    """(fn, fwd) to call as ``fn(fwd, ...)``: the kind's ``train_loss`` or ``score_batch``
    with the model, compiled when ``enabled`` (scoring passes ``dynamic=True``).

    A kind whose functions trace whole (``compile_whole_loss``: ar, classifier) has the
    function compiled together with the model: the LM head's output, the fp32 upcast and
    the cross-entropy then fuse, instead of full fp32 logits being written and read back
    several times a step (the largest tensor of a GPT-2-sized step).  The masked kinds
    draw masks and pick positions with data-dependent shapes, so only their model is
    compiled.  Not enabled: the eager function and model.
    """
    if not enabled:
        return fn, model
    if getattr(kind, "compile_whole_loss", False):
        return torch.compile(fn, **compile_kw), model
    return fn, torch.compile(model, **compile_kw)


# ---------------------------------------------------------------- batches


def batch_plan(lengths: List[int], batch_size: int, seed: int, epoch: int) -> List[List[int]]:
    """The micro-batches (lists of text indices) of one epoch; a pure function of its inputs."""
    rng = random.Random(stable_seed(seed, "batches", epoch))
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * BUCKET_BATCHES
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)  # so the long batches do not all come at the end of a chunk
    return batches


def collate(seqs: List[List[int]], pad_id: int, device: torch.device):
    """Right-padded (input_ids, attention_mask) on ``device``."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    non_blocking = device.type == "cuda"
    if non_blocking:
        ids, mask = ids.pin_memory(), mask.pin_memory()
    return ids.to(device, non_blocking=non_blocking), mask.to(device, non_blocking=non_blocking)


def total_steps(cfg, n_texts: int) -> int:
    """train.epochs (when > 0) overrides train.steps."""
    if cfg.epochs > 0:
        micro_per_epoch = math.ceil(n_texts / cfg.batch_size)
        return max(1, math.ceil(cfg.epochs * micro_per_epoch / cfg.grad_accum))
    return max(1, cfg.steps)


def lr_at(step: int, cfg, total: int) -> float:
    """Linear warmup over warmup_steps, then cosine from lr down to lr * min_lr_ratio."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, total - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    min_lr = cfg.lr * cfg.min_lr_ratio
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)


def make_optimizer(model: torch.nn.Module, cfg, device: torch.device) -> AdamW:
    """AdamW (remote/optim.py: torch.optim's update without its torch._dynamo import)."""
    # Weight decay on matrices (linear layers, embeddings) only, not on biases and norms.
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)


# ---------------------------------------------------------------- stop on SIGTERM


class _StopFlag:
    """SIGTERM/SIGHUP (the wrapper forwards them) ask the loop to checkpoint and exit."""

    def __init__(self):
        self.signum = 0
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: keep the default behaviour
                pass
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


# ---------------------------------------------------------------- the loop


def train(
    model: torch.nn.Module,
    kind,
    data: Texts,
    cfg,
    *,
    job_dir: str,
    phase: str,
    pad_id: int,
    config: Dict[str, Any],
    log: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """Train ``model`` in place; resume from ``<job_dir>/ckpt/last.pt`` if it is there.

    ``cfg`` is a TrainSpec (or PretrainSpec); ``config`` is the resolved config saved
    with every checkpoint (a resumed job must have the same).  Returns stats for the
    manifest: steps, tokens_seen, train_s.
    """
    device = resolve_device(cfg.device)
    setup_backends(device)
    progress_path = os.path.join(job_dir, "progress.jsonl")
    lengths = [len(x) for x in data.ids]
    total = total_steps(cfg, len(lengths))
    micro_per_epoch = math.ceil(len(lengths) / cfg.batch_size)
    labels = torch.tensor(data.labels, dtype=torch.long) if data.labels is not None else None

    generator = torch.Generator(device=device)  # the kind's own draws (MDLM masks...)
    generator.manual_seed(stable_seed(cfg.seed, "kind"))
    model.to(device)
    optimizer = make_optimizer(model, cfg, device)
    step, tokens_seen, train_s = 0, 0, 0.0

    state = checkpoint.load_last(job_dir, config)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        checkpoint.set_rng_state(state["rng"], device, generator)
        step, tokens_seen, train_s = state["step"], state["tokens_seen"], state["train_s"]
        log(f"{phase}: resuming from {checkpoint.last_path(job_dir)} at step {step}/{total}")
    else:
        torch.manual_seed(stable_seed(cfg.seed, "dropout"))

    loss_fn, fwd = compiled(kind.train_loss, kind, model, cfg.compile)
    if cfg.compile:
        whole = getattr(kind, "compile_whole_loss", False)
        log(
            f"{phase}: torch.compile on ({'the loss with the model' if whole else 'the model'});"
            " the first steps of each new batch shape compile"
        )
    model.train()
    extra = {}

    def save_last():
        checkpoint.save_last(
            job_dir,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "total": total,
                "lr": lr_at(step, cfg, total),
                "tokens_seen": tokens_seen,
                "train_s": train_s + time.time() - t_run,
                "rng": checkpoint.rng_state(device, generator),
                "config": config,
            },
        )

    plans: Dict[int, List[List[int]]] = {}

    def micro_batch(k: int) -> List[int]:
        epoch = k // micro_per_epoch
        if epoch not in plans:
            plans.clear()  # keep one epoch's plan in memory
            plans[epoch] = batch_plan(lengths, cfg.batch_size, cfg.seed, epoch)
        return plans[epoch][k % micro_per_epoch]

    log(
        f"{phase}: {len(lengths)} texts, {sum(lengths)} tokens, {total} steps of"
        f" {cfg.batch_size}x{cfg.grad_accum} texts on {device}"
    )
    start_step, t_run = step, time.time()
    # The loss is summed on the device and read once per log interval: a .item() per
    # step would stall the GPU queue.
    t_log, loss_sum, loss_n, tok_log = t_run, torch.zeros((), device=device), 0, 0
    with _StopFlag() as stop:
        while step < total:
            lr = lr_at(step, cfg, total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            for micro in range(cfg.grad_accum):
                idx = micro_batch(step * cfg.grad_accum + micro)
                input_ids, attention_mask = collate([data.ids[i] for i in idx], pad_id, device)
                if labels is not None:
                    extra = {"labels": labels[idx].to(device)}
                with autocast(device, cfg.dtype):
                    loss, n_tok = loss_fn(fwd, input_ids, attention_mask, generator, **extra)
                # Mean over micro-batches, like one big batch of batch_size * grad_accum.
                (loss / cfg.grad_accum).backward()
                loss_sum += loss.detach()
                loss_n += 1
                n_in = sum(len(data.ids[i]) for i in idx)
                tok_log += n_in
                tokens_seen += n_in
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1

            last = step == total
            # The first step is logged too: it shows at once that training is under way
            # (and its loss at init) instead of after log_every steps, which can be minutes.
            first = step == start_step + 1
            if step % max(cfg.log_every, 1) == 0 or first or last or stop.signum:
                now = time.time()
                elapsed = now - t_log
                rate = (now - t_run) / max(step - start_step, 1)
                row = {
                    "t": now,
                    "phase": phase,
                    "step": step,
                    "total": total,
                    "loss": round(float(loss_sum.item()) / max(loss_n, 1), 5),
                    "lr": lr,
                    "tokens_per_s": round(tok_log / max(elapsed, 1e-9), 1),
                    "eta_s": round(rate * (total - step), 1),
                    "device": device.type,
                }
                append_jsonl(progress_path, row)
                log(
                    f"{phase} step {step}/{total} loss {row['loss']:.4f} lr {lr:.2e}"
                    f" {row['tokens_per_s']:.0f} tok/s eta {row['eta_s']:.0f}s"
                )
                t_log, loss_sum, loss_n, tok_log = now, torch.zeros((), device=device), 0, 0
            if (cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0 and not last) or (
                stop.signum and not last
            ):
                save_last()
            if stop.signum and not last:
                log(f"{phase}: signal {stop.signum} at step {step}: checkpoint saved, exiting")
                raise SystemExit(128 + stop.signum)
    model.eval()
    return {"steps": total, "tokens_seen": tokens_seen, "train_s": round(train_s + time.time() - t_run, 3)}


@torch.no_grad()
def mean_loss(model, kind, data: Texts, cfg, *, pad_id: int, seed: int) -> float:
    """Token-weighted mean training loss on held-out texts (the validation loss)."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(stable_seed(seed, "val"))
    model.eval()
    order = sorted(range(len(data.ids)), key=lambda i: len(data.ids[i]))
    total, count = 0.0, 0
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        input_ids, attention_mask = collate([data.ids[i] for i in idx], pad_id, device)
        extra = {"labels": torch.tensor([data.labels[i] for i in idx], device=device)} if data.labels else {}
        with autocast(device, cfg.dtype):
            loss, n = kind.train_loss(model, input_ids, attention_mask, generator, **extra)
        n = int(n)
        total += float(loss) * n
        count += n
    return total / max(count, 1)
