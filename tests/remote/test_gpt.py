"""remote/models/gpt.py: the plain-torch GPT-2 is GPT-2, with Hugging Face's as the oracle."""

from __future__ import annotations

import os

import pytest
import torch
from runkit import REVIEWS as TEXTS
from runkit import python_output
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

from remote import checkpoint
from remote import tokenizer as tokenizers
from remote.kinds import ar, classifier
from remote.models.gpt import GPT, GPTClassifier, GPTConfig, load_hf_state_dict
from remote.spec import ModelSpec, ScoreSpec
from remote.train import collate

pytestmark = pytest.mark.usefixtures("one_thread")


def pair(vocab: int, n_layer: int = 2, n_embd: int = 32, n_head: int = 4, n_positions: int = 32):
    """An HF GPT-2 with random weights, and our GPT carrying the same weights."""
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(
        GPT2Config(vocab_size=vocab, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head)
    ).eval()
    ours = GPT(GPTConfig(vocab, n_positions, n_layer, n_embd, n_head)).eval()
    load_hf_state_dict(ours, hf.state_dict())
    return hf, ours


def test_logits_equal_hugging_faces_gpt2_at_every_real_position(tok):
    hf, ours = pair(len(tok))
    ids, mask = collate(tokenizers.encode(tok, TEXTS, 32), tok.pad_token_id, torch.device("cpu"))
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask).logits
        got = ours(ids, mask)
    real = mask.bool()
    assert got.shape == want.shape
    torch.testing.assert_close(got[real], want[real], rtol=1e-5, atol=1e-5)


def test_exact_nll_equals_hugging_faces_loss_on_each_text_alone(tok):
    hf, ours = pair(len(tok))
    ids = tokenizers.encode(tok, TEXTS, 32)
    with torch.inference_mode():
        nll, tokens, _ = ar.score_batch(ours, *collate(ids, tok.pad_token_id, torch.device("cpu")), [0] * 3, None, tok)
        for i, seq in enumerate(ids):
            x = torch.tensor([seq])
            assert tokens[i] == len(seq) - 1
            assert nll[i] == pytest.approx(hf(input_ids=x, labels=x).loss.item() * (len(seq) - 1), rel=1e-5)


def test_training_step_gradients_match_hugging_face(tok):
    """Same weights, same batch: the same loss and the same gradient on every weight."""
    hf, ours = pair(len(tok))
    ids, mask = collate(tokenizers.encode(tok, TEXTS, 32), tok.pad_token_id, torch.device("cpu"))
    labels = ids.masked_fill(mask == 0, -100)
    hf_loss = hf(input_ids=ids, attention_mask=mask, labels=labels).loss
    hf_loss.backward()
    loss, _ = ar.train_loss(ours, ids, mask)
    loss.backward()
    assert loss.item() == pytest.approx(hf_loss.item(), rel=1e-5)
    grads = dict(ours.named_parameters())
    for name, p in hf.named_parameters():
        key = name.removeprefix("transformer.")
        g = grads[key].grad
        want = p.grad.t() if key.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")) else p.grad
        torch.testing.assert_close(g, want, rtol=1e-4, atol=1e-6, msg=key)


def test_classifier_logits_equal_hugging_faces_gpt2_sequence_classifier(tok):
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=32, n_layer=2, n_head=4, num_labels=3)
    config.pad_token_id = tok.pad_token_id  # how HF finds the last real token
    hf = GPT2ForSequenceClassification(config).eval()
    ours = GPTClassifier(GPTConfig(len(tok), 32, 2, 32, 4), num_labels=3).eval()
    load_hf_state_dict(ours, hf.state_dict())
    ids, mask = collate(tokenizers.encode(tok, TEXTS, 32), tok.pad_token_id, torch.device("cpu"))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, mask), hf(input_ids=ids, attention_mask=mask).logits, rtol=1e-5, atol=1e-5)


def test_a_classifier_starts_from_the_ar_pretrain_checkpoint_with_its_body(tok, tmp_path):
    spec = ModelSpec(n_layer=2, n_embd=32, n_head=2, max_len=32)
    torch.manual_seed(0)
    body = ar.build_model(spec, tok)
    folder = checkpoint.save_final(str(tmp_path / "pre"), body, tok, ar, {"steps": 1})
    model, _ = checkpoint.load_final(folder, classifier, spec, num_labels=3)
    assert isinstance(model, GPTClassifier) and model.num_labels == 3
    for name, p in body.state_dict().items():
        assert torch.equal(model.transformer.state_dict()[name], p), name
    own = checkpoint.save_final(str(tmp_path / "cls"), model, tok, classifier, {"steps": 1})
    again, _ = checkpoint.load_final(own, classifier, spec, num_labels=3)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())
    with pytest.raises(Exception, match="number of classes"):
        checkpoint.load_final(own, classifier, spec, num_labels=2)


def test_fresh_model_has_gpt2s_initialisation_and_tied_head():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=4000, n_positions=64, n_layer=8, n_embd=256, n_head=4))
    assert model.lm_head.weight is model.wte.weight
    assert model.wte.weight.std().item() == pytest.approx(0.02, rel=0.05)
    proj = model.h[0].mlp.c_proj.weight
    assert proj.std().item() == pytest.approx(0.02 / 4, rel=0.05)  # 0.02 / sqrt(2 * 8)
    assert float(model.h[0].attn.c_attn.bias.detach().abs().sum()) == 0.0
    assert float(model.h[0].ln_1.weight.detach().mean()) == 1.0
    with pytest.raises(ValueError, match="positions"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_dropout_is_applied_in_training_and_never_in_eval():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, n_positions=16, n_layer=1, n_embd=16, n_head=2, dropout=0.5))
    x = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(x), model(x))
        model.eval()
        assert torch.equal(model(x), model(x))


def test_checkpoint_round_trip_keeps_the_scores_and_reloads_as_gpt(tok, tmp_path):
    spec = ModelSpec(n_layer=2, n_embd=32, n_head=2, max_len=32)
    torch.manual_seed(0)
    model = ar.build_model(spec, tok).eval()
    batch = collate(tokenizers.encode(tok, TEXTS, 32), tok.pad_token_id, torch.device("cpu"))
    folder = checkpoint.save_final(str(tmp_path), model, tok, ar, {"steps": 1})
    assert sorted(os.listdir(folder)) >= ["gpt.json", "model.pt"]
    again, tok2 = checkpoint.load_final(folder, ar, spec)
    assert isinstance(again, GPT) and len(tok2) == len(tok)
    with torch.inference_mode():
        assert ar.score_batch(again.eval(), *batch, [0] * 3, ScoreSpec(), tok) == ar.score_batch(
            model, *batch, [0] * 3, ScoreSpec(), tok
        )


def test_a_scratch_ar_model_is_built_without_importing_transformers():
    code = (
        "import sys; from remote.kinds import get_kind; from remote.spec import ModelSpec\n"
        "class T:\n    model_max_length = 64\n    def __len__(self): return 100\n"
        "m = get_kind('ar').build_model(ModelSpec(), T())\n"
        "print(type(m).__name__, 'transformers' in sys.modules)"
    )
    assert python_output(code).split() == ["GPT", "False"]
