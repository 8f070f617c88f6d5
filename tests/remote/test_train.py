"""remote/train.py pieces: schedule, batches, step counting, determinism."""

from __future__ import annotations

import json
import math

import pytest
import torch
from runkit import TINY

from remote import tokenizer as tokenizers
from remote.kinds import ar
from remote.spec import ModelSpec, TrainSpec
from remote.train import Texts, batch_plan, lr_at, total_steps, train


def test_lr_warmup_then_cosine_to_min():
    cfg = TrainSpec(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg, 110) == pytest.approx(0.1)
    assert lr_at(9, cfg, 110) == pytest.approx(1.0)
    assert lr_at(10, cfg, 110) == pytest.approx(1.0)
    assert lr_at(60, cfg, 110) == pytest.approx(0.55)
    assert lr_at(110, cfg, 110) == pytest.approx(0.1)
    lrs = [lr_at(s, cfg, 110) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_epochs_override_steps():
    assert total_steps(TrainSpec(steps=7), 1000) == 7
    # 100 texts, 16 a micro-batch -> 7 micro-batches an epoch, 2 per step -> 3.5 steps an epoch
    assert total_steps(TrainSpec(steps=7, epochs=2, batch_size=16, grad_accum=2), 100) == 7
    assert total_steps(TrainSpec(epochs=1.0, batch_size=10), 95) == 10


def test_batch_plan_covers_every_text_once_with_little_padding():
    lengths = [(i * 37) % 200 + 1 for i in range(1000)]
    plan = batch_plan(lengths, 16, seed=0, epoch=0)
    assert sorted(i for b in plan for i in b) == list(range(1000))
    assert plan == batch_plan(lengths, 16, seed=0, epoch=0)
    assert plan != batch_plan(lengths, 16, seed=0, epoch=1)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in plan)
    assert padded / sum(lengths) < 1.1  # random batches would pad to ~1.9x here


def test_training_is_deterministic_on_cpu(tmp_path):
    torch.set_num_threads(1)
    texts = [line for line in TINY.read_text().splitlines()[:64]]
    tok = tokenizers.train_bpe(texts, 300, 48)
    data = Texts(tokenizers.encode(tok, texts, 48))
    cfg = TrainSpec(steps=6, batch_size=8, warmup_steps=2, log_every=3, lr=1e-2)
    weights = []
    for run in ("a", "b"):
        torch.manual_seed(0)
        model = ar.build_model(ModelSpec(n_layer=1, n_embd=32, n_head=2, max_len=48), tok, None)
        (tmp_path / run).mkdir()
        stats = train(
            model,
            ar,
            data,
            cfg,
            job_dir=str(tmp_path / run),
            phase="train",
            pad_id=tok.pad_token_id,
            config={},
            log=lambda m: None,
        )
        assert stats["steps"] == 6 and stats["tokens_seen"] > 0
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])
    rows = [json.loads(line) for line in (tmp_path / "a" / "progress.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 3, 6] and all(math.isfinite(r["loss"]) for r in rows)
