"""One job of a run:  python -m remote.run_job --run-dir DIR --job NAME

Reads ``DIR/run.yaml`` (docs/CONTRACT.md), does the job's role and writes its files in
``DIR/jobs/NAME/``:

- ``pretrain``: train the backbone on the unlabelled texts (plus the training split's
  texts when ``pretrain.include_train``), save ``ckpt/final/`` with the tokenizer.
- ``class``: start from the pretrain job's ``ckpt/final/`` when the job requires one,
  else from ``model.init``; train on the training texts of ``label``; score every
  test text; write ``scores.jsonl``.
- ``classifier``: one discriminative model over all classes; one score line per test
  text per class.
- ``score`` (``score.mdlm_draws: adaptive``; the class jobs then only train): every class
  model scores the test texts in rounds of shared draws (remote/adaptive.py); one score
  line per test text per class.

Then ``manifest.json``, last.  A relaunched job resumes from ``ckpt/last.pt``, or goes
straight to scoring when ``ckpt/final/`` exists.  Errors the user can fix (data,
config, a missing checkpoint) print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import time

_STARTED = time.time()  # import_s counts from here: this module's imports, torch's, the kind's

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, Callable, Dict, List, Optional  # noqa: E402

import yaml  # noqa: E402

from remote.data import DataError, load_splits, load_unlabelled  # noqa: E402
from remote.errors import JobError  # noqa: E402
from remote.files import atomic_write_json, atomic_write_jsonl, sha256_file, stable_seed  # noqa: E402
from remote.quickexit import exit_now  # noqa: E402
from remote.spec import Experiment, SpecError, load_experiment, pretrain_kind_name, to_dict  # noqa: E402

EXIT_USER_ERROR = 2


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class ResolvedJob:
    """The job this process runs, resolved from the run's run.yaml."""

    run_dir: str
    name: str
    role: str
    label: Optional[str]
    requires: List[str]
    exp: Experiment
    jobs: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)  # stages measured on the way (tokenizer_s)

    @property
    def dir(self) -> str:
        return os.path.join(self.run_dir, "jobs", self.name)

    def pretrain_final(self) -> Optional[str]:
        """The ``ckpt/final`` of the pretrain job this job requires, if any."""
        from remote import checkpoint

        if self.exp.pretrain.enabled and self.exp.pretrain.from_run:  # a shared one (a study's)
            other = os.path.join(os.path.dirname(os.path.normpath(self.run_dir)), self.exp.pretrain.from_run)
            folder = checkpoint.final_dir(os.path.join(other, "jobs", "pretrain"))
            checkpoint.read_info(folder)
            return folder
        for name in self.requires:
            if self.jobs.get(name, {}).get("role") == "pretrain":
                folder = checkpoint.final_dir(os.path.join(self.run_dir, "jobs", name))
                checkpoint.read_info(folder)  # a clear error when it is missing
                return folder
        return None


def load_job(run_dir: str, name: str) -> ResolvedJob:
    path = os.path.join(run_dir, "run.yaml")
    if not os.path.isfile(path):
        raise JobError(f"{path}: no such file (is --run-dir the run's folder?)")
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise JobError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict) or "experiment" not in raw or "jobs" not in raw:
        raise JobError(f"{path}: expected a mapping with 'experiment' and 'jobs'")
    exp = load_experiment(raw["experiment"], f"{path}: experiment")
    jobs = {str(j.get("name")): j for j in raw["jobs"] or [] if isinstance(j, dict)}
    if name not in jobs:
        raise JobError(f"{path}: no job named {name!r} (jobs: {', '.join(jobs)})")
    j = jobs[name]
    role = j.get("role")
    if role not in ("pretrain", "class", "classifier", "score"):
        raise JobError(f"{path}: job {name!r}: role must be pretrain, class, classifier or score, got {role!r}")
    label = None if j.get("label") is None else str(j["label"])
    if role == "class" and label is None:
        raise JobError(f"{path}: job {name!r}: a class job needs a label")
    return ResolvedJob(run_dir, name, role, label, [str(r) for r in j.get("requires") or []], exp, jobs)


# ---------------------------------------------------------------- model + tokenizer


def _init_name(init: str) -> str:
    """A local checkpoint folder (relative to the code snapshot) or an HF hub name."""
    return os.path.abspath(init) if os.path.isdir(init) else init


def model_and_tokenizer(
    job: ResolvedJob, kind, tokenizer_texts: Callable[[], List[str]], from_pretrain: bool, seed: int, **build_kwargs
):
    """(model, tokenizer, trained): the job's own finished model if there is one, else the
    starting point (pretrain checkpoint, HF init, or a scratch config + new BPE)."""
    import torch

    from remote import checkpoint
    from remote import tokenizer as tokenizers

    spec = job.exp.model
    if checkpoint.has_final(job.dir):
        log(f"training already finished: loading {checkpoint.final_dir(job.dir)}")
        model, tok = checkpoint.load_final(checkpoint.final_dir(job.dir), kind, spec, **build_kwargs)
        return model, tok, True
    # The same seed in every job: class models of a scratch run start from identical
    # weights, one less source of difference between them.
    torch.manual_seed(stable_seed(seed, "init"))
    pre = job.pretrain_final() if from_pretrain else None
    if pre is not None:
        log(f"starting from the pretrain checkpoint {pre}")
        model, tok = checkpoint.load_final(pre, kind, spec, **build_kwargs)
    elif spec.init == "scratch":
        texts = tokenizer_texts()
        t0 = time.time()
        tok = tokenizers.train_bpe(texts, spec.vocab_size, spec.max_len)
        job.timings["tokenizer_s"] = round(time.time() - t0, 3)
        log(f"trained a BPE tokenizer on {len(texts)} texts: {len(tok)} tokens in {time.time() - t0:.1f}s")
        model = kind.build_model(spec, tok, None, **build_kwargs)
    else:
        init = _init_name(spec.init)
        tok = tokenizers.from_pretrained(init, getattr(kind, "masked", False))
        model = kind.build_model(spec, tok, init, **build_kwargs)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {type(model).__name__}, {n_params / 1e6:.2f}M parameters, vocabulary {len(tok)}")
    return model, tok, False


def encoder(kind):
    from remote import tokenizer as tokenizers

    return getattr(kind, "encode", tokenizers.encode)


def train_or_reuse(job: ResolvedJob, kind, model, tok, trained: bool, data, cfg, phase: str) -> Dict[str, Any]:
    """Train (resuming if a checkpoint is there) and save ckpt/final, or reuse its stats."""
    from remote import checkpoint
    from remote import tokenizer as tokenizers
    from remote.train import resolve_device, train

    if trained:
        model.to(resolve_device(cfg.device))  # load_final leaves it on the CPU
        info = checkpoint.read_info(checkpoint.final_dir(job.dir))
        return {k: info.get(k) for k in ("steps", "tokens_seen", "train_s", "train_texts", "train_tokens")}
    config = {
        "job": job.name,
        "role": job.role,
        "label": job.label,
        "phase": phase,
        "data": to_dict(job.exp.data),
        "model": to_dict(job.exp.model),
        "train": to_dict(cfg),
    }
    stats = train(model, kind, data, cfg, job_dir=job.dir, phase=phase, pad_id=tok.pad_token_id, config=config, log=log)
    stats.update(train_texts=len(data.ids), train_tokens=data.n_tokens)
    checkpoint.save_final(
        job.dir,
        model,
        tok,
        kind,
        {
            **stats,
            "job": job.name,
            "kind": job.exp.model.kind,
            "tokenizer_sha256": tokenizers.fingerprint(tok),
            "config": config,
        },
    )
    last = checkpoint.last_path(job.dir)
    if os.path.exists(last):
        os.remove(last)  # the optimizer state is big and no longer needed
    log(f"{phase}: done in {stats['train_s']:.1f}s, saved {checkpoint.final_dir(job.dir)}")
    return stats


# ---------------------------------------------------------------- roles


def run_pretrain(job: ResolvedJob) -> Dict[str, Any]:
    from remote import tokenizer as tokenizers
    from remote.kinds import get_kind
    from remote.train import Texts

    exp = job.exp
    kind = get_kind(pretrain_kind_name(exp.model.kind))
    texts_cache: List[str] = []
    data_facts: Dict[str, int] = {}

    def texts() -> List[str]:
        if not texts_cache:
            splits = load_splits(exp.data, log=log)
            rows, dropped = load_unlabelled(exp.data, splits.test)
            data_facts.update(splits.duplicates, unlabelled_copies_of_test_dropped=dropped)
            if dropped:
                log(f"pretrain data: dropped {dropped} unlabelled texts that are copies of test texts")
            if exp.pretrain.include_train:
                # The labelled training split (never the test texts, nor copies of them) is in-domain text too.
                rows += splits.train
            texts_cache.extend(e.text for e in rows)
            log(f"pretrain data: {len(texts_cache)} texts")
        return texts_cache

    model, tok, trained = model_and_tokenizer(job, kind, texts, False, exp.pretrain.seed)
    # Long texts become several windows (a kind with its own encode keeps it).
    encode = getattr(kind, "encode", None) or tokenizers.encode_windows
    data = Texts(encode(tok, texts(), exp.model.max_len)) if not trained else Texts([])
    stats = train_or_reuse(job, kind, model, tok, trained, data, exp.pretrain, "pretrain")
    return {
        "files": [],
        "n_test": 0,
        "classes": [],
        **stats,
        "timings": {"train_s": stats["train_s"], "score_s": 0.0},
        "tokenizer_sha256": _fingerprint(tok),
        "device": _device(model).type,
        "data": data_facts or None,  # None: a reused model, whose texts were not read again
    }


def run_class(job: ResolvedJob) -> Dict[str, Any]:
    from remote.kinds import get_kind
    from remote.train import Texts, mean_loss

    exp = job.exp
    splits = load_splits(exp.data, log=log)
    if job.label not in splits.classes:
        raise JobError(
            f"job {job.name!r}: label {job.label!r} is not a class of the data (classes: {', '.join(splits.classes)})"
        )
    kind = get_kind(exp.model.kind)
    if getattr(kind, "needs_labels", False):
        raise JobError(
            f"job {job.name!r} has role class but model.kind {exp.model.kind!r} trains on all"
            " classes at once: it needs one job with role classifier"
        )
    model, tok, trained = model_and_tokenizer(job, kind, lambda: [e.text for e in splits.train], True, exp.train.seed)
    encode = encoder(kind)
    own = splits.train_of(job.label)
    log(f"class {job.label!r}: {len(own)} training texts, {len(splits.test)} test texts, classes {splits.classes}")
    data = Texts(encode(tok, [e.text for e in own], exp.model.max_len))
    stats = train_or_reuse(job, kind, model, tok, trained, data, exp.train, "train")
    device = _device(model)
    val = splits.val_of(job.label)
    val_loss = None
    if val:
        val_loss = mean_loss(
            model,
            kind,
            Texts(encode(tok, [e.text for e in val], exp.model.max_len)),
            exp.train,
            pad_id=tok.pad_token_id,
            seed=exp.score.seed,
        )
        log(f"validation loss {val_loss:.4f} on {len(val)} texts")

    if exp.score.is_adaptive:
        # The run's score job scores with every class model at once (remote/adaptive.py).
        log("score.mdlm_draws is adaptive: the run's score job scores the test texts")
        return {
            "files": [],
            "n_test": 0,
            "classes": splits.classes,
            **stats,
            "data": splits.duplicates,
            "val_loss": val_loss,
            "timings": {"train_s": stats["train_s"], "score_s": 0.0},
            "tokenizer_sha256": _fingerprint(tok),
            "device": device.type,
        }
    results, score_s = score_test(job, kind, model, tok, splits.test, encode)
    rows = [
        {
            "id": e.id,
            "label": e.label,
            "class": job.label,
            "nll": float(nll),
            "tokens": int(n),
            "se": None if se is None else float(se),
            **({} if draws is None else {"draws": [float(d) for d in draws]}),
        }
        for e, (nll, n, se, draws) in zip(splits.test, results)
    ]
    atomic_write_jsonl(os.path.join(job.dir, "scores.jsonl"), rows)
    return _scored(splits, stats, val_loss, score_s, tok, device.type)


def run_classifier(job: ResolvedJob) -> Dict[str, Any]:
    from remote.kinds import get_kind
    from remote.train import Texts, mean_loss

    exp = job.exp
    splits = load_splits(exp.data, log=log)
    kind = get_kind(exp.model.kind)
    if not getattr(kind, "needs_labels", False):
        raise JobError(f"job {job.name!r} has role classifier but model.kind is {exp.model.kind!r}")
    index = {c: i for i, c in enumerate(splits.classes)}
    model, tok, trained = model_and_tokenizer(
        job, kind, lambda: [e.text for e in splits.train], True, exp.train.seed, num_labels=len(splits.classes)
    )
    encode = encoder(kind)
    data = Texts(encode(tok, [e.text for e in splits.train], exp.model.max_len), [index[e.label] for e in splits.train])
    log(f"classifier: {len(data.ids)} training texts, {len(splits.test)} test texts, classes {splits.classes}")
    stats = train_or_reuse(job, kind, model, tok, trained, data, exp.train, "train")
    val_loss = None
    if splits.val:
        val = Texts(encode(tok, [e.text for e in splits.val], exp.model.max_len), [index[e.label] for e in splits.val])
        val_loss = mean_loss(model, kind, val, exp.train, pad_id=tok.pad_token_id, seed=exp.score.seed)
        log(f"validation loss {val_loss:.4f} on {len(splits.val)} texts")

    results, score_s = score_test(job, kind, model, tok, splits.test, encode)
    # Its scores, log p(c|x), carry these frequencies: the evaluation divides them out under eval.prior uniform.
    class_counts = {c: len(splits.train_of(c)) for c in splits.classes}
    rows = [
        {"id": e.id, "label": e.label, "class": c, "nll": float(nll[index[c]]), "tokens": int(n), "se": None}
        for e, (nll, n, *_) in zip(splits.test, results)
        for c in splits.classes
    ]
    atomic_write_jsonl(os.path.join(job.dir, "scores.jsonl"), rows)
    return {**_scored(splits, stats, val_loss, score_s, tok, _device(model).type), "train_class_counts": class_counts}


def run_score(job: ResolvedJob) -> Dict[str, Any]:
    from remote.adaptive import run_score as score_in_rounds

    return score_in_rounds(job, encoder, log=log)


def score_test(job: ResolvedJob, kind, model, tok, test, encode):
    """(per-text results, seconds): every test text under this job's trained model."""
    from remote.score import score_texts

    exp = job.exp
    t0 = time.time()
    ids = encode(tok, [e.text for e in test], exp.model.max_len)
    results = score_texts(
        model,
        kind,
        ids,
        [e.id for e in test],
        exp.score,
        tok,
        dtype=exp.train.dtype,
        job_dir=job.dir,
        compile=exp.train.compile,
        log=log,
    )
    return results, round(time.time() - t0, 3)


def _scored(splits, stats: Dict[str, Any], val_loss, score_s: float, tok, device: str) -> Dict[str, Any]:
    """The manifest's fields of a job that trained and wrote scores.jsonl (a class job, the
    classifier): one shape, so the controller reads both alike (docs/CONTRACT.md)."""
    return {
        "files": ["scores.jsonl"],
        "n_test": len(splits.test),
        "classes": splits.classes,
        **stats,
        "data": splits.duplicates,
        "val_loss": val_loss,
        "timings": {"train_s": stats["train_s"], "score_s": score_s},
        "tokenizer_sha256": _fingerprint(tok),
        "device": device,
    }


def _fingerprint(tok) -> str:
    from remote import tokenizer as tokenizers

    return tokenizers.fingerprint(tok)


def _device(model):
    return next(model.parameters()).device


# ---------------------------------------------------------------- manifest


def _version(module: str) -> Optional[str]:
    """A package's version without importing it when the job did not (a kind without transformers)."""
    if module in sys.modules:
        return getattr(sys.modules[module], "__version__", None)
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - not installed, or no metadata: the manifest says null
        return None


def write_manifest(job: ResolvedJob, result: Dict[str, Any]) -> None:
    import torch

    files = {}
    for name in result.pop("files"):
        path = os.path.join(job.dir, name)
        files[name] = {"size": os.path.getsize(path), "sha256": sha256_file(path)}
    cuda = result.get("device") == "cuda"
    manifest = {
        "job": job.name,
        "role": job.role,
        "label": job.label,
        "kind": job.exp.model.kind,
        "init": job.exp.model.init,
        "files": files,
        **result,
        "gpu_name": torch.cuda.get_device_name(0) if cuda else None,
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "python": platform.python_version(),
        "finished": time.time(),
    }
    from remote import backends

    scheduler = backends.get(backends.REQUEUEING, "")
    handle = scheduler.own_handle(os.environ)
    if handle:
        # Under a scheduler that requeues (Slurm, the manifest's "slurm"): which job it was,
        # and how often the job was requeued (preemption, time limits) before it finished -
        # each rerun resumed from the checkpoint - counting the requeues of its earlier
        # submissions when --resume submitted it again.
        manifest[scheduler.name] = {"job_id": handle, "requeues": scheduler.requeue_counts(os.environ)[1]}
    atomic_write_json(os.path.join(job.dir, "manifest.json"), manifest)


# ---------------------------------------------------------------- entry point


def run(run_dir: str, name: str) -> None:
    job = load_job(os.path.abspath(run_dir), name)
    os.makedirs(job.dir, exist_ok=True)
    stale = os.path.join(job.dir, "manifest.json")
    if os.path.exists(stale):
        os.remove(stale)  # a rerun: the old manifest must not vouch for new files
    from remote.kinds import get_kind

    # tqdm bars garble log.txt: off before anything of Hugging Face's is imported.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Only what this job's kind needs (remote/kinds/__init__.py imports one kind module);
    # this also fails fast on a kind this snapshot lacks.
    get_kind(pretrain_kind_name(job.exp.model.kind) if job.role == "pretrain" else job.exp.model.kind)
    configure_threads(job)
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    import_s = round(time.time() - _STARTED, 3)
    log(
        f"job {job.name} ({job.role}{', label ' + repr(job.label) if job.label is not None else ''}):"
        f" kind {job.exp.model.kind}, init {job.exp.model.init} (imports {import_s:.1f}s)"
    )
    from remote.train import cpu_fallback_note

    # Given a GPU that torch cannot use (a CPU build, no driver): runs on the CPU, loudly.
    device_note = cpu_fallback_note(train_section(job).device)
    if device_note:
        log(f"WARNING: {device_note}")
    t0 = time.time()
    roles = {"pretrain": run_pretrain, "class": run_class, "classifier": run_classifier, "score": run_score}
    result = roles[job.role](job)
    if device_note and result.get("device") == "cpu":
        result["device_note"] = device_note
    result["timings"] = {
        "import_s": import_s,
        **job.timings,
        **result.get("timings", {}),
        **peak_memory_mib(result.get("device") == "cuda"),
    }
    write_manifest(job, result)
    log(f"job {job.name} finished in {time.time() - t0:.1f}s")


def train_section(job: ResolvedJob):
    """The TrainSpec the job runs under: ``pretrain`` for the pretrain job, else ``train``."""
    return job.exp.pretrain if job.role == "pretrain" else job.exp.train


def cpu_threads(job: ResolvedJob) -> int:
    """Torch intra-op threads for this job on a CPU host.

    The pretrain job runs alone and has its own section's setting.  The joint score job
    also runs alone, once every class job has ended: it gets the cores they had together.
    """
    if job.role == "score":
        classes = sum(1 for r in job.requires if job.jobs.get(r, {}).get("role") == "class")
        return job.exp.train.cpu_threads * max(1, classes)
    return train_section(job).cpu_threads


def configure_threads(job: ResolvedJob) -> None:
    import torch

    from remote.train import resolve_device

    if resolve_device(train_section(job).device).type == "cpu":
        torch.set_num_threads(min(cpu_threads(job), os.cpu_count() or 1))


def peak_memory_mib(cuda: bool) -> Dict[str, float]:
    """The process's peak resident memory (and the GPU's peak allocation) in MiB."""
    import resource

    import torch

    out = {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}  # KiB on Linux
    if cuda and torch.cuda.is_available():
        out["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def user_errors():
    from remote.kinds import KindError

    return (DataError, SpecError, JobError, KindError)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m remote.run_job", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, help="the run's folder (holds run.yaml)")
    parser.add_argument("--job", required=True, help="the job's name in run.yaml")
    args = parser.parse_args(argv)
    try:
        run(args.run_dir, args.job)
    except user_errors() as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    exit_now(main())
