"""The `mlm-pll` kind, and the Hugging Face masked-LM inits shared with `mdlm`.

- PLL equals the sum of the L single-mask log-probs computed one by one;
- padding never changes a score;
- HF inits (a tiny RoBERTa/BERT/DistilBERT saved to a tmp folder, passed as a local
  path) load, train and score; the fast head-on-selected-positions path equals the
  full-logits path;
- MLM masking follows 15% with 80/10/10;
- a tiny two-class set is classified near-perfectly after brief training.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    DistilBertConfig,
    DistilBertForMaskedLM,
    RobertaConfig,
    RobertaForMaskedLM,
)

from remote.kinds import mdlm, pll
from remote.spec import ModelSpec, ScoreSpec


def _sibling(name):
    """Helpers shared with test_mdlm.py, loaded by path (works with or without
    __init__.py files and whatever pytest's import mode)."""
    spec = importlib.util.spec_from_file_location(f"_{name}_helpers", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _sibling("test_mdlm")
make_tokenizer, encode, N_WORDS = helpers.make_tokenizer, helpers.encode, helpers.N_WORDS


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread (see test_mdlm.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SPEC = ModelSpec(kind="mlm-pll", n_layer=2, n_embd=32, n_head=2, max_len=64)


def tiny_model(tok, seed=0):
    torch.manual_seed(seed)
    model = pll.build_model(SPEC, tok, None)
    torch.nn.init.normal_(model.net.head.weight, std=1.0)  # the real head starts at zero
    return model.eval()


def pll_one_by_one(model, ids, attn) -> list[float]:
    """Oracle: for each text token, mask it alone, full forward, -log p (mask logit -inf)."""
    out = []
    for row, mask in zip(ids, attn):
        n = int(mask.sum())
        row = row[:n]
        total = 0.0
        for pos in range(1, n - 1):  # every token between <s> and </s>
            x = row.clone()[None]
            x[0, pos] = model.mask_token_id
            with torch.no_grad():
                logits = model(x, torch.ones_like(x))[0, pos].double()
            logits[model.mask_token_id] = float("-inf")
            total -= float(logits.log_softmax(-1)[row[pos]])
        out.append(total)
    return out


TEXTS = ["w1 w2 w3 w4 w5 w6 w7", "w8 w9", "w10 w11 w12 w13 w14"]


def test_pll_equals_single_mask_sum():
    tok = make_tokenizer()
    model = tiny_model(tok)
    ids, attn = encode(tok, TEXTS)
    with torch.inference_mode():  # batch_size 4: chunks that mix texts and lengths
        nll, tokens, se = pll.score_batch(model, ids, attn, [0, 0, 0], ScoreSpec(batch_size=4), tok)
    assert tokens == [7, 2, 5] and se == [None] * 3
    assert nll == pytest.approx(pll_one_by_one(model, ids, attn), rel=1e-5)


def test_pll_padding_does_not_change_the_score_and_is_deterministic():
    tok = make_tokenizer()
    model = tiny_model(tok, seed=1)
    spec = ScoreSpec(batch_size=3)
    ids1, attn1 = encode(tok, ["w3 w1 w4"])
    ids2, attn2 = encode(tok, ["w9 w2 w6 w5 w3 w5 w8 w9 w7", "w3 w1 w4"])
    with torch.inference_mode():
        alone = pll.score_batch(model, ids1, attn1, [1], spec, tok)
        batched = pll.score_batch(model, ids2, attn2, [2, 3], spec, tok)
        again = pll.score_batch(model, ids2, attn2, [2, 3], spec, tok)
    assert batched == again
    assert alone[0][0] == pytest.approx(batched[0][1], rel=1e-5)


def test_mlm_masking_is_15_percent_80_10_10():
    tok = make_tokenizer()
    model = tiny_model(tok)
    seen = []
    model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append((args[0].clone(), kwargs["select"].clone())), with_kwargs=True
    )
    ids, attn = encode(tok, [" ".join(f"w{i % N_WORDS}" for i in range(60))] * 50)
    with torch.no_grad():
        loss, n = pll.train_loss(model, ids, attn, torch.Generator().manual_seed(0))
    noisy, chosen = seen[0]
    content = attn.bool() & (ids >= 5)
    assert not (chosen & ~content).any()  # only text tokens are chosen
    frac = chosen.sum() / content.sum()
    as_mask = (noisy[chosen] == tok.mask_token_id).float().mean()
    kept = (noisy[chosen] == ids[chosen]).float().mean()
    assert 0.13 < frac < 0.17 and 0.76 < as_mask < 0.84 and 0.07 < kept < 0.13
    assert n == int(attn.sum()) and torch.isfinite(loss)


# -------------------------------------------------------------- Hugging Face inits ----
def _save(tmp_path, name, model):
    folder = tmp_path / name
    model.save_pretrained(folder)
    return str(folder)


def hf_folders(tmp_path, tok):
    V = len(tok)
    torch.manual_seed(0)
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    roberta = RobertaForMaskedLM(
        RobertaConfig(
            vocab_size=V,
            pad_token_id=tok.pad_token_id,
            bos_token_id=1,
            eos_token_id=2,
            max_position_embeddings=64 + 2 + tok.pad_token_id,
            **small,
        )
    )
    bert = BertForMaskedLM(BertConfig(vocab_size=V, pad_token_id=tok.pad_token_id, max_position_embeddings=64, **small))
    distil = DistilBertForMaskedLM(
        DistilBertConfig(
            vocab_size=V,
            pad_token_id=tok.pad_token_id,
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=64,
        )
    )
    return {
        "roberta": _save(tmp_path, "roberta", roberta),
        "bert": _save(tmp_path, "bert", bert),
        "distilbert": _save(tmp_path, "distil", distil),
    }


def test_hf_inits_load_train_and_score(tmp_path):
    tok = make_tokenizer()
    folders = hf_folders(tmp_path, tok)
    ids, attn = encode(tok, TEXTS)
    expected_mode = {"roberta": "hf-head", "bert": "hf-head", "distilbert": "hf"}
    for name, folder in folders.items():
        model = pll.build_model(SPEC, tok, folder).eval()
        assert model.mode == expected_mode[name], name
        with torch.no_grad():
            full = model.net(input_ids=ids, attention_mask=attn).logits
            sel = model(ids, attn, select=attn.bool())
        torch.testing.assert_close(sel, full[attn.bool()], rtol=1e-4, atol=1e-5)
        with torch.inference_mode():
            got = pll.score_batch(model, ids, attn, [0, 0, 0], ScoreSpec(batch_size=5), tok)[0]
        assert got == pytest.approx(pll_one_by_one(model, ids, attn), rel=1e-4), name
        # Both kinds train from the same init.
        for kind in (pll, mdlm):
            model.train()
            loss, _ = kind.train_loss(model, ids, attn, torch.Generator().manual_seed(0))
            loss.backward()
            assert torch.isfinite(loss)
        # ... and save/load without the original init.
        out = tmp_path / f"saved-{name}"
        out.mkdir()
        pll.save_model(model, str(out))
        reloaded = pll.load_model(SPEC, tok, str(out)).eval()
        model.eval()
        with torch.inference_mode():
            assert pll.score_batch(reloaded, ids, attn, [0] * 3, ScoreSpec(), tok)[0] == pytest.approx(
                pll.score_batch(model, ids, attn, [0] * 3, ScoreSpec(), tok)[0], rel=1e-6
            )


def test_hf_init_refuses_texts_longer_than_its_positions(tmp_path):
    from remote.errors import JobError

    tok = make_tokenizer()
    tok.model_max_length = 1024
    folder = hf_folders(tmp_path, tok)["bert"]
    with pytest.raises(JobError, match="max_len"):
        pll.build_model(ModelSpec(kind="mlm-pll", max_len=128), tok, folder)


# ------------------------------------------------------------ classification ----
def test_two_class_synthetic_is_classified():
    tok = make_tokenizer()
    train = helpers.synthetic_two_class(60, seed=0)
    test = helpers.synthetic_two_class(25, seed=1)
    class_models = {
        c: helpers.train_tiny(pll, tok, [t for t, y in train if y == c], seed=i) for i, c in enumerate(("a", "b"))
    }
    acc = helpers.classify(pll, tok, class_models, test, ScoreSpec(batch_size=64))
    assert acc >= 0.9, acc
