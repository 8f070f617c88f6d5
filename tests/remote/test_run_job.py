"""remote/run_job.py end to end: real run folders, real jobs, tiny models on CPU.

Covers the per-class flow (ar), the classifier, a pretrain stage, the file contract
(scores, manifest, progress), user errors (exit 2, one line, no traceback), resume
after SIGTERM and after SIGKILL (same result as an uninterrupted run), and a relaunch
of a finished job (no retraining).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import timing
import torch
from runkit import (
    ROOT,
    TINY,
    accuracy,
    class_jobs,
    experiment,
    job,
    python_output,
    read_jsonl,
    run_job_cmd,
    run_job_process,
    write_run,
)

from remote import run_job
from remote.files import sha256_file

pytestmark = pytest.mark.slow  # each test trains and scores real (tiny) models in subprocesses


def run_all(run_dir, names):
    for name in names:
        assert run_job.main(["--run-dir", str(run_dir), "--job", name]) == 0, name


_TIMINGS = ("import_s", "train_s", "score_s", "peak_rss_mib")


def check_contract(run_dir, name, n_lines):
    jd = run_dir / "jobs" / name
    manifest = json.loads((jd / "manifest.json").read_text())
    # Issue 15: what the job spent importing (torch, its kind) before its first progress line;
    # issue 13: its peak memory (and the tokenizer's training time when it trained one).
    timings = manifest["timings"]
    assert {"import_s", "train_s", "score_s", "peak_rss_mib"} <= set(timings) <= {*_TIMINGS, "tokenizer_s"}
    assert timings["import_s"] > 0 and 50 < timings["peak_rss_mib"] < 64 * 1024
    entry = manifest["files"]["scores.jsonl"]
    assert entry == {"size": os.path.getsize(jd / "scores.jsonl"), "sha256": sha256_file(str(jd / "scores.jsonl"))}
    for key in (
        "job",
        "role",
        "n_test",
        "classes",
        "train_texts",
        "train_tokens",
        "timings",
        "device",
        "gpu_name",
        "torch",
        "transformers",
    ):
        assert key in manifest, key
    rows = read_jsonl(jd / "scores.jsonl")
    assert len(rows) == n_lines
    kind = manifest["kind"]
    extra = {"draws"} if kind == "mdlm" else set()  # per-draw estimates: the controller pairs them
    assert all(set(r) == {"id", "label", "class", "nll", "tokens", "se"} | extra for r in rows)
    if extra:
        assert all(len(r["draws"]) == len(rows[0]["draws"]) > 1 for r in rows)
        assert all(abs(sum(r["draws"]) / len(r["draws"]) - r["nll"]) <= 1e-9 * abs(r["nll"]) for r in rows)
    progress = read_jsonl(jd / "progress.jsonl")
    assert {p["phase"] for p in progress} == {"train", "score"}
    for p in progress:
        assert {"t", "phase", "step", "total", "loss", "tokens_per_s", "eta_s"} <= set(p)
    assert progress[-1]["phase"] == "score" and progress[-1]["step"] == progress[-1]["total"] == manifest["n_test"]
    return manifest


def test_per_class_ar_classifies_the_tiny_set(tmp_path):
    run_dir = write_run(tmp_path / "run", experiment(), class_jobs())
    run_all(run_dir, ["neg", "pos"])
    manifests = [check_contract(run_dir, name, 120) for name in ("neg", "pos")]
    assert manifests[0]["tokenizer_sha256"] == manifests[1]["tokenizer_sha256"]  # same vocabulary
    assert manifests[0]["classes"] == ["0", "1"] and manifests[0]["n_test"] == 120
    assert accuracy(run_dir, ["neg", "pos"]) >= 0.9
    rows = read_jsonl(run_dir / "jobs" / "neg" / "scores.jsonl")
    assert all(r["class"] == "0" and r["se"] is None and r["tokens"] > 0 for r in rows)


def test_classifier_classifies_the_tiny_set(tmp_path):
    run_dir = write_run(
        tmp_path / "run",
        # 120 steps: on this tiny set a scratch classifier's loss sits at log 2 for ~30 steps
        # before it drops, and when exactly depends on the initial weights' draw.
        experiment(model__kind="classifier", data__val_fraction=0.1, train__steps=120),
        [job("classifier", "classifier")],
    )
    run_all(run_dir, ["classifier"])
    manifest = check_contract(run_dir, "classifier", 2 * 120)
    assert manifest["val_loss"] is not None
    # the training frequencies its posteriors carry, for eval.prior uniform to divide out
    counts = manifest["train_class_counts"]
    assert list(counts) == manifest["classes"] and sum(counts.values()) == manifest["train_texts"]
    assert set(manifest["data"]) == {"duplicate_texts", "conflicting_label_texts"}
    assert accuracy(run_dir, ["classifier"]) >= 0.9


@pytest.mark.parametrize("kind", ["ar", "classifier"])
def test_pretrain_then_class_jobs_share_its_tokenizer(tmp_path, kind):
    unlabelled = tmp_path / "unsup.jsonl"
    unlabelled.write_text(
        "".join(json.dumps({"text": json.loads(line)["text"]}) + "\n" for line in TINY.read_text().splitlines()[::3])
    )
    exp = experiment(
        model__kind=kind,
        data__unlabelled_path=str(unlabelled),
        pretrain__enabled=True,
        pretrain__steps=15,
        pretrain__lr=0.003,
        pretrain__log_every=5,
        train__steps=40 if kind == "ar" else 120,  # see test_classifier_classifies_the_tiny_set
    )
    pre = job("pretrain", "pretrain")
    jobs = [pre] + (class_jobs(["pretrain"]) if kind == "ar" else [job("classifier", "classifier", None, ["pretrain"])])
    run_dir = write_run(tmp_path / "run", exp, jobs)
    names = [j["name"] for j in jobs]
    run_all(run_dir, names)
    pm = json.loads((run_dir / "jobs" / "pretrain" / "manifest.json").read_text())
    assert pm["files"] == {} and pm["steps"] == 15
    # unlabelled + the training split (include_train); a text longer than max_len gives several windows
    assert pm["train_texts"] >= 200 + 480
    assert {p["phase"] for p in read_jsonl(run_dir / "jobs" / "pretrain" / "progress.jsonl")} == {"pretrain"}
    for name in names[1:]:
        m = json.loads((run_dir / "jobs" / name / "manifest.json").read_text())
        assert m["tokenizer_sha256"] == pm["tokenizer_sha256"]
    assert accuracy(run_dir, names[1:]) >= 0.85


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1\n')
    run_dir = write_run(tmp_path / "run", experiment(data__path=str(bad)), class_jobs())
    proc = run_job_process(run_dir, "neg")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {bad}:2: not valid JSON (Expecting ',' delimiter, column 25)"]
    # in-process: a missing pretrain checkpoint, an unknown job, a missing run.yaml
    run_dir = write_run(tmp_path / "run2", experiment(), class_jobs(["pretrain"]) + [job("pretrain", "pretrain")])
    assert run_job.main(["--run-dir", str(run_dir), "--job", "neg"]) == 2
    assert "not a finished checkpoint" in capsys.readouterr().err
    assert run_job.main(["--run-dir", str(run_dir), "--job", "nope"]) == 2
    assert run_job.main(["--run-dir", str(tmp_path), "--job", "neg"]) == 2
    assert "run.yaml: no such file" in capsys.readouterr().err


def _wait_for_step(proc, progress, step, timeout=120):
    deadline = time.time() + timing.scaled(timeout)
    try:
        while time.time() < deadline:
            assert proc.poll() is None, proc.communicate()
            if progress.exists():
                steps = [r["step"] for r in read_jsonl(progress) if r["phase"] == "train"]
                if steps and steps[-1] >= step:
                    return
            time.sleep(0.02)
        raise AssertionError("training did not get there in time")
    except BaseException:
        proc.kill()  # a failed wait must not leave the job training
        proc.communicate()
        raise


def test_killed_job_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    exp = experiment(train__steps=100, train__checkpoint_every=10, train__log_every=5, train__batch_size=8)
    ref = write_run(tmp_path / "ref", exp, class_jobs())
    run_all(ref, ["neg"])

    run_dir = write_run(tmp_path / "run", exp, class_jobs())
    jd = run_dir / "jobs" / "neg"
    progress = jd / "progress.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    # 1. SIGTERM (what the wrapper forwards on cancel): checkpoint at once, exit 143.
    proc = subprocess.Popen(
        run_job_cmd(run_dir, "neg"), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    _wait_for_step(proc, progress, 20)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=timing.scaled(60))
    assert proc.returncode == 128 + signal.SIGTERM, out
    stopped_at = torch.load(jd / "ckpt" / "last.pt", weights_only=False)["step"]
    assert stopped_at >= 20 and read_jsonl(progress)[-1]["step"] == stopped_at

    # 2. Relaunch, then SIGKILL (no chance to save): the periodic checkpoint remains.
    proc = subprocess.Popen(
        run_job_cmd(run_dir, "neg"), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    _wait_for_step(proc, progress, stopped_at + 20)
    proc.kill()
    proc.communicate(timeout=timing.scaled(60))
    steps = [r["step"] for r in read_jsonl(progress) if r["phase"] == "train"]
    resumed_steps = steps[steps.index(stopped_at) + 1 :]
    # continued (its first step, then every 5th), did not start over at 1
    assert resumed_steps[0] == stopped_at + 1 and all(s % 5 == 0 for s in resumed_steps[1:]), resumed_steps
    ckpt_step = torch.load(jd / "ckpt" / "last.pt", weights_only=False)["step"]
    assert ckpt_step % 10 == 0 and ckpt_step > stopped_at
    assert not (jd / "manifest.json").exists()

    # 3. Relaunch to the end (in-process): resumes at the periodic checkpoint ...
    n_before = len(steps)
    run_all(run_dir, ["neg"])
    steps = [r["step"] for r in read_jsonl(progress) if r["phase"] == "train"]
    assert steps[n_before : n_before + 2] == [ckpt_step + 1, ckpt_step + 5] and steps[-1] == 100
    assert not (jd / "ckpt" / "last.pt").exists() and (jd / "ckpt" / "final").is_dir()
    # ... and ends exactly where the uninterrupted run did.
    assert read_jsonl(jd / "scores.jsonl") == read_jsonl(ref / "jobs" / "neg" / "scores.jsonl")

    # 4. A finished job relaunched scores again from ckpt/final without training.
    n_train_lines = len(steps)
    run_all(run_dir, ["neg"])
    assert len([r for r in read_jsonl(progress) if r["phase"] == "train"]) == n_train_lines
    assert read_jsonl(jd / "scores.jsonl") == read_jsonl(ref / "jobs" / "neg" / "scores.jsonl")
    check_contract(run_dir, "neg", 120)


def _gpt2_like_folder(folder):
    """A local 'pretrained' GPT-2: one <|endoftext|> for bos/eos and no pad token, like the hub's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    texts = [json.loads(line)["text"] for line in TINY.read_text().splitlines()]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<|endoftext|>", eos_token="<|endoftext|>", model_max_length=64
    )
    assert tok.pad_token is None
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=64, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)
    ).save_pretrained(folder)


@pytest.mark.parametrize("kind", ["ar", "classifier"])
def test_hf_style_init_from_a_local_folder(tmp_path, kind):
    init = tmp_path / "gpt2-like"
    _gpt2_like_folder(init)
    exp = experiment(model__kind=kind, model__init=str(init), train__steps=60)
    jobs = class_jobs() if kind == "ar" else [job("classifier", "classifier")]
    run_dir = write_run(tmp_path / "run", exp, jobs)
    names = [j["name"] for j in jobs]
    run_all(run_dir, names)
    final = run_dir / "jobs" / names[0] / "ckpt" / "final"
    tok_cfg = json.loads((final / "tokenizer_config.json").read_text())
    assert "<pad>" in json.dumps(tok_cfg)  # a pad token was added (and the embeddings grown)
    assert accuracy(run_dir, names) >= 0.85


@pytest.mark.parametrize("kind", ["mdlm", "mlm-pll"])
def test_masked_kinds_run_through_the_same_jobs(tmp_path, kind):
    pytest.importorskip({"mdlm": "remote.kinds.mdlm", "mlm-pll": "remote.kinds.pll"}[kind])
    run_dir = write_run(tmp_path / "run", experiment(model__kind=kind), class_jobs())
    run_all(run_dir, ["neg", "pos"])
    manifests = [check_contract(run_dir, name, 120) for name in ("neg", "pos")]
    assert manifests[0]["tokenizer_sha256"] == manifests[1]["tokenizer_sha256"]
    assert accuracy(run_dir, ["neg", "pos"]) >= 0.8
    # a relaunch reloads the kind's own checkpoint format and reproduces the scores
    before = read_jsonl(run_dir / "jobs" / "neg" / "scores.jsonl")
    run_all(run_dir, ["neg"])
    assert read_jsonl(run_dir / "jobs" / "neg" / "scores.jsonl") == before


def test_cpu_threads_follow_the_jobs_section_and_the_score_job_inherits_its_class_jobs_cores():
    from remote.spec import load_experiment

    exp = load_experiment(
        {"name": "t", "data": {"path": "x.jsonl"}, "train": {"cpu_threads": 1}, "pretrain": {"cpu_threads": 3}}, "t"
    )
    jobs = {
        "pretrain": {"role": "pretrain"},
        "neg": {"role": "class", "requires": ["pretrain"]},
        "pos": {"role": "class", "requires": ["pretrain"]},
        "score": {"role": "score", "requires": ["neg", "pos"]},
    }

    def threads(name):
        j = jobs[name]
        return run_job.cpu_threads(run_job.ResolvedJob("r", name, j["role"], None, j.get("requires", []), exp, jobs))

    assert [threads(n) for n in ("pretrain", "neg", "pos", "score")] == [3, 1, 1, 2]


@pytest.mark.parametrize("kind", ["ar", "mdlm", "classifier"])
def test_a_scratch_job_imports_neither_transformers_nor_dynamo(tmp_path, kind):
    """Issue 15 item 4: a from-scratch job's start-up is torch's import, not transformers'
    (~6 s CPU for GPT-2's modules) nor torch._dynamo's (~2.5 s, pulled in by torch.optim)."""
    name = "classifier" if kind == "classifier" else "neg"
    jobs = [job("classifier", "classifier")] if kind == "classifier" else class_jobs()
    run_dir = write_run(tmp_path / "run", experiment(model__kind=kind, train__steps=3), jobs)
    code = (
        "import sys\nfrom remote import run_job\n"
        f"code = run_job.main(['--run-dir', {str(run_dir)!r}, '--job', {name!r}])\n"
        "print('IMPORTED', code, sorted(m for m in ('transformers', 'torch._dynamo') if m in sys.modules))"
    )
    assert python_output(code) == "IMPORTED 0 []"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch that cannot use a GPU")
def test_a_job_given_a_gpu_it_cannot_use_runs_on_the_cpu_and_says_so(tmp_path, monkeypatch, capsys):
    """Slurm (or the GPU queue) gave the job a GPU, torch has no CUDA: the job still runs
    (the test bed's fake GPUs rely on it), but its log, progress lines and manifest say so."""
    run_dir = write_run(tmp_path / "run", experiment(train__steps=5), [job("neg", "class", "0")])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    run_all(run_dir, ["neg"])
    out = capsys.readouterr().out
    warning = [line for line in out.splitlines() if "WARNING:" in line]
    assert len(warning) == 1 and out.index("WARNING:") < out.index(" texts on cpu"), out  # at the start, once
    assert "given GPU 3" in warning[0] and f"torch {torch.__version__}" in warning[0]
    assert "orch bootstrap" in warning[0] and "train.device: cuda" in warning[0]
    jd = run_dir / "jobs" / "neg"
    manifest = json.loads((jd / "manifest.json").read_text())
    assert manifest["device"] == "cpu" and manifest["device_note"] == warning[0].split("WARNING: ", 1)[1]
    assert {p["device"] for p in read_jsonl(jd / "progress.jsonl")} == {"cpu"}


def test_a_slurm_jobs_manifest_counts_the_requeues_of_its_earlier_submissions(tmp_path, monkeypatch):
    """Submitted again by --resume, the job is a new Slurm job (SLURM_RESTART_COUNT from 0):
    its batch script carries the earlier submissions' requeues on (remote/backends/slurm.py)."""
    run_dir = write_run(tmp_path / "run", experiment(train__steps=5), [job("neg", "class", "0")])
    monkeypatch.setenv("SLURM_JOB_ID", "456")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    monkeypatch.setenv("ORCH_EARLIER_REQUEUES", "2")
    run_all(run_dir, ["neg"])
    manifest = json.loads((run_dir / "jobs" / "neg" / "manifest.json").read_text())
    assert manifest["slurm"] == {"job_id": "456", "requeues": 3}


@pytest.mark.parametrize("visible", [None, "", "-1", "NoDevFiles"])
def test_no_gpu_given_is_no_note(monkeypatch, visible):
    from remote.train import cpu_fallback_note

    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert cpu_fallback_note("auto") is None


def test_an_explicit_device_is_no_fallback(monkeypatch):
    from remote.train import cpu_fallback_note

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert cpu_fallback_note("cpu") is None  # asked for the CPU
    assert cpu_fallback_note("cuda") is None  # fails in resolve_device instead


def test_a_cuda_torch_blind_to_the_gpu_says_why(monkeypatch):
    from remote import train

    def init():
        raise RuntimeError("Found no NVIDIA driver on your system.\nPlease check ...")

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setattr(train.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(train.torch.cuda, "init", init)
    monkeypatch.setattr(train.torch.version, "cuda", "12.6")
    note = train.cpu_fallback_note("auto")
    assert "given GPU 0,1" in note and "(CUDA 12.6) cannot see it: Found no NVIDIA driver on your system." in note
    assert "Please check" not in note and "runs on the CPU" in note
