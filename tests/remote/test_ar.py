"""remote/kinds/ar.py and classifier.py: exact NLL, padding, identical models."""

from __future__ import annotations

import copy

import pytest
import torch
from runkit import REVIEWS as TEXTS

from remote import tokenizer as tokenizers
from remote.kinds import KindError, ar, classifier, get_kind
from remote.spec import ModelSpec, ScoreSpec
from remote.train import collate

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(kind, tok, **kw):
    torch.manual_seed(0)
    model = kind.build_model(ModelSpec(n_layer=2, n_embd=32, n_head=2, max_len=32), tok, None, **kw)
    return model.eval()


def test_nll_is_the_sum_of_next_token_losses_over_predicted_tokens(tok):
    """Independent of the kind's code: a plain log-softmax over the model's logits.
    (tests/remote/test_gpt.py checks the model itself against Hugging Face's GPT-2.)"""
    model = tiny(ar, tok)
    ids = tokenizers.encode(tok, TEXTS, 32)
    input_ids, mask = collate(ids, tok.pad_token_id, torch.device("cpu"))
    with torch.inference_mode():
        nll, tokens, se = ar.score_batch(model, input_ids, mask, [0] * 3, ScoreSpec(), tok)
        for i, seq in enumerate(ids):
            logp = model(torch.tensor([seq]))[0].double().log_softmax(-1)
            want = -sum(float(logp[j, seq[j + 1]]) for j in range(len(seq) - 1))
            assert tokens[i] == len(seq) - 1
            assert nll[i] == pytest.approx(want, rel=1e-6)
    assert se == [None, None, None]


def test_padding_and_batch_composition_do_not_change_scores(tok):
    model = tiny(ar, tok)
    ids = tokenizers.encode(tok, TEXTS, 32)
    with torch.inference_mode():
        together = ar.score_batch(
            model, *collate(ids, tok.pad_token_id, torch.device("cpu")), [0] * 3, ScoreSpec(), tok
        )[0]
        alone = [
            ar.score_batch(model, *collate([s], tok.pad_token_id, torch.device("cpu")), [0], ScoreSpec(), tok)[0][0]
            for s in ids
        ]
    assert together == pytest.approx(alone, rel=1e-5)


def test_identical_models_give_identical_nll(tok):
    a = tiny(ar, tok)
    b = copy.deepcopy(a)
    batch = collate(tokenizers.encode(tok, TEXTS, 32), tok.pad_token_id, torch.device("cpu"))
    with torch.inference_mode():
        assert ar.score_batch(a, *batch, [1, 2, 3], ScoreSpec(), tok) == ar.score_batch(
            b, *batch, [1, 2, 3], ScoreSpec(), tok
        )


def test_train_loss_is_mean_over_predicted_tokens(tok):
    model = tiny(ar, tok)
    ids = tokenizers.encode(tok, TEXTS, 32)
    batch = collate(ids, tok.pad_token_id, torch.device("cpu"))
    loss, n = ar.train_loss(model, *batch, torch.Generator())
    with torch.no_grad():
        nll, tokens, _ = ar.score_batch(model, *batch, [0] * 3, ScoreSpec(), tok)
    assert int(n) == sum(tokens)
    assert loss.item() == pytest.approx(sum(nll) / sum(tokens), rel=1e-5)


def test_classifier_scores_are_class_log_probs(tok):
    model = tiny(classifier, tok, num_labels=3)
    ids = tokenizers.encode(tok, TEXTS, 32)
    batch = collate(ids, tok.pad_token_id, torch.device("cpu"))
    with torch.inference_mode():
        nll, tokens, _ = classifier.score_batch(model, *batch, [0] * 3, ScoreSpec(), tok)
        alone = classifier.score_batch(
            model, *collate(ids[1:2], tok.pad_token_id, torch.device("cpu")), [0], ScoreSpec(), tok
        )[0][0]
    assert len(nll) == 3 and all(len(row) == 3 for row in nll)
    for row in nll:
        assert sum(torch.exp(-torch.tensor(row)).tolist()) == pytest.approx(1.0, abs=1e-6)
    assert nll[1] == pytest.approx(alone, rel=1e-5)  # the head reads the last real token, not a pad
    loss, n = classifier.train_loss(model, *batch, None, labels=torch.tensor([0, 1, 2]))
    assert n == 3 and loss.item() == pytest.approx(sum(nll[i][i] for i in range(3)) / 3, rel=1e-5)


def test_registry():
    assert get_kind("ar") is ar and get_kind("classifier").needs_labels
    with pytest.raises(KindError, match="unknown kind"):
        get_kind("rnn")
