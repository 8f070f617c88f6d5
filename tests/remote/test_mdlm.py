"""The `mdlm` kind and the bidirectional backbone: tiny CPU models, exact oracles.

- the NELBO estimator (both stratifications) agrees with the exact NELBO obtained by
  enumerating every mask set of a short text;
- the training loss is the same NELBO in expectation;
- common random numbers: identical class models give identical scores, different
  ones are asked about exactly the same masked copies;
- padding never changes a score (key padding mask; draws depend on the text only);
- a backbone that takes no padding mask is fed unpadded equal-length chunks;
- a tiny two-class set is classified near-perfectly after brief training.
"""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from remote.kinds import mdlm
from remote.models import MaskedLM, bidir
from remote.spec import ModelSpec, ScoreSpec

N_WORDS = 16


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: intra-op threads only add synchronisation, and on a busy 2-core
    machine OpenMP's spinning threads make each matmul ~100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_tokenizer(n_words: int = N_WORDS) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over w0..w{n-1} with <pad> <s> </s> <unk> <mask>."""
    specials = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
    vocab = {t: i for i, t in enumerate(specials)}
    vocab.update({f"w{i}": len(specials) + i for i in range(n_words)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


def encode(tok, texts):
    enc = tok(texts, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def tiny_model(tok, seed=0, head_std=1.0, **overrides) -> MaskedLM:
    """A small random backbone.  The real head is zero-initialised (uniform predictions,
    which would make every estimator trivially exact), so tests give it random weights."""
    torch.manual_seed(seed)
    spec = ModelSpec(kind="mdlm", n_layer=2, n_embd=32, n_head=2, max_len=64, **overrides)
    model = mdlm.build_model(spec, tok, None)
    if head_std:
        torch.nn.init.normal_(model.net.head.weight, std=head_std)
    return model.eval()


def exact_nelbo(model: MaskedLM, ids: torch.Tensor) -> float:
    """sum over non-empty mask sets M of (k-1)!(L-k)!/L! * sum_{l in M} -log p(x_l | x_M).

    Independent of the code under test: full logits, explicit -inf mask logit,
    log_softmax, one row per mask set.
    """
    content = [i for i, t in enumerate(ids.tolist()) if t >= 5]
    L = len(content)
    rows, sets = [], []
    for k in range(1, L + 1):
        for M in itertools.combinations(content, k):
            x = ids.clone()
            x[list(M)] = model.mask_token_id
            rows.append(x)
            sets.append(M)
    batch = torch.stack(rows)
    with torch.no_grad():
        logits = model(batch, torch.ones_like(batch)).double()
    logits[..., model.mask_token_id] = float("-inf")
    logp = logits.log_softmax(-1)
    total = 0.0
    for r, M in enumerate(sets):
        k = len(M)
        coef = math.factorial(k - 1) * math.factorial(L - k) / math.factorial(L)
        total += coef * -sum(float(logp[r, pos, ids[pos]]) for pos in M)
    return total


# --------------------------------------------------------------------- backbone ----
def test_backbone_ignores_padding_and_shapes():
    tok = make_tokenizer()
    model = tiny_model(tok)
    ids, attn = encode(tok, ["w1 w2 w3"])
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    pattn = torch.cat([attn, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    with torch.no_grad():
        a = model(ids, attn)
        b = model(padded, pattn)
        sel = model(padded, pattn, select=pattn.bool())
    assert a.shape == (1, 5, len(tok))
    torch.testing.assert_close(a[0], b[0, :5], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sel, b[0, :5], rtol=1e-5, atol=1e-5)
    # The real (zero-initialised) head predicts the uniform distribution at step 0.
    fresh = mdlm.build_model(ModelSpec(kind="mdlm", n_layer=1, n_embd=16, n_head=2), tok, None)
    assert torch.count_nonzero(fresh(ids, attn)) == 0


def _reference_varlen(qkv, cu_seqlens, max_seqlen, dropout_p, causal=False):
    """What flash_attn_varlen_qkvpacked_func computes, in plain torch: each packed
    sequence attends to itself only."""
    assert qkv.dim() == 4 and qkv.shape[1] == 3 and not causal
    assert max_seqlen == int((cu_seqlens[1:] - cu_seqlens[:-1]).max())
    out = []
    for a, b in zip(cu_seqlens[:-1].tolist(), cu_seqlens[1:].tolist()):
        q, k, v = (t.transpose(0, 1) for t in qkv[a:b].unbind(dim=1))  # [H, n, D]
        out.append(F.scaled_dot_product_attention(q, k, v).transpose(0, 1))
    return torch.cat(out)


def test_flash_varlen_path_unpads_and_repads(monkeypatch):
    """The flash-attn branch (CUDA-only for real) with a torch stand-in for the kernel:
    same outputs at real positions as the SDPA branch."""
    tok = make_tokenizer()
    model = tiny_model(tok, seed=8)
    ids, attn = encode(tok, ["w1 w2 w3", "w4 w5 w6 w7 w8 w9", "w10"])
    with torch.no_grad():
        ref = model(ids, attn)
        monkeypatch.setattr(bidir, "_flash_varlen_qkvpacked", _reference_varlen)
        monkeypatch.setattr(bidir.AttnMeta, "use_flash", lambda self, q: True)
        got = model(ids, attn)
    real = attn.bool()
    torch.testing.assert_close(got[real], ref[real], rtol=1e-5, atol=1e-5)


def test_flash_attn_is_optional():
    tok = make_tokenizer()
    model = tiny_model(tok, attention="flash")  # falls back to SDPA without flash-attn/CUDA
    ids, attn = encode(tok, ["w1 w2", "w3 w4 w5 w6"])
    with torch.no_grad():
        out = model(ids, attn)
    assert torch.isfinite(out).all()
    assert isinstance(bidir.flash_attn_available(), bool)


# -------------------------------------------------------------------- estimator ----
@pytest.mark.parametrize("stratify", ["k", "t"])
def test_estimate_matches_exact_nelbo(stratify):
    tok = make_tokenizer()
    model = tiny_model(tok, seed=1)
    ids, attn = encode(tok, ["w3 w7 w1 w12 w5"])  # L = 5 text tokens: 31 mask sets
    exact = exact_nelbo(model, ids[0])
    spec = ScoreSpec(batch_size=1024, mdlm_draws=3000, mdlm_stratify=stratify)
    with torch.inference_mode():
        (est,), (tokens,), (se,), (draws,) = mdlm.score_batch(model, ids, attn, [7], spec, tok)
    assert tokens == 5
    assert se is not None and 0 < se < 0.03 * exact  # the check below has teeth
    assert abs(est - exact) < 3 * se, (est, exact, se)
    assert len(draws) == 3000 and sum(draws) / 3000 == pytest.approx(est, rel=1e-12)


def test_draw_masks_strata_and_determinism():
    n, K = 7, 14
    mask, w = mdlm.draw_masks(n, K, seed=42, stratify="k")
    k = mask.sum(dim=1)
    # Evenly spaced k: every value 1..n appears K/n = 2 times; weight n/k.
    assert sorted(k.tolist()) == sorted(list(range(1, n + 1)) * 2)
    torch.testing.assert_close(w, n / k.double())
    again, _ = mdlm.draw_masks(n, K, seed=42, stratify="k")
    other, _ = mdlm.draw_masks(n, K, seed=43, stratify="k")
    assert torch.equal(mask, again) and not torch.equal(mask, other)
    mask_t, w_t = mdlm.draw_masks(n, 4, seed=42, stratify="t")
    t = 1.0 / w_t
    assert ((t >= mdlm.EPS) & (t < 1)).all() and (t.diff() > 0).all()  # one t per stratum
    assert mask_t.shape == (4, n)


def test_train_loss_is_the_nelbo_in_expectation():
    """E[loss * n_tokens / B] over t and masks = exact NELBO (up to the O(eps) ends)."""
    tok = make_tokenizer()
    model = tiny_model(tok, seed=2)
    ids, attn = encode(tok, ["w4 w9 w2 w14"])
    exact = exact_nelbo(model, ids[0])
    B = 64
    g = torch.Generator().manual_seed(0)
    per_batch = []
    with torch.no_grad():
        for _ in range(150):
            loss, n = mdlm.train_loss(model, ids.repeat(B, 1), attn.repeat(B, 1), g)
            per_batch.append(float(loss) * n / B)
    mean = sum(per_batch) / len(per_batch)
    se = (sum((x - mean) ** 2 for x in per_batch) / (len(per_batch) - 1)) ** 0.5 / len(per_batch) ** 0.5
    assert abs(mean - exact) < 3.5 * se + 2e-3 * exact, (mean, exact, se)


def test_train_loss_backward_and_padding():
    tok = make_tokenizer()
    model = tiny_model(tok).train()
    ids, attn = encode(tok, ["w1 w2 w3 w4 w5 w6 w7", "w8", "w9 w10 w11"])
    loss, n = mdlm.train_loss(model, ids, attn, torch.Generator().manual_seed(0))
    assert n == int(attn.sum()) and torch.isfinite(loss)
    loss.backward()
    assert model.net.embed.weight.grad is not None
    assert torch.count_nonzero(model.net.embed.weight.grad[tok.pad_token_id]) == 0  # pads unused


# ---------------------------------------------------- common random numbers ----
def _record_inputs(model):
    seen = []

    def hook(module, args, kwargs):
        seen.append(args[0].clone())

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def test_common_random_numbers():
    tok = make_tokenizer()
    texts = ["w1 w2 w3 w4 w5 w6", "w7 w8 w9", "w10 w11 w12 w13 w14 w15 w1 w2"]
    ids, attn = encode(tok, texts)
    seeds = [11, 22, 33]
    spec = ScoreSpec(batch_size=5, mdlm_draws=6)
    a = tiny_model(tok, seed=3)
    a_copy = copy.deepcopy(a)
    b = tiny_model(tok, seed=4)  # a different "class model"
    seen_a, seen_b = _record_inputs(a), _record_inputs(b)
    with torch.inference_mode():
        ra = mdlm.score_batch(a, ids, attn, seeds, spec, tok)
        rc = mdlm.score_batch(a_copy, ids, attn, seeds, spec, tok)
        rb = mdlm.score_batch(b, ids, attn, seeds, spec, tok)
    assert ra == rc  # bit-identical: same weights, same draws
    assert ra[0] != rb[0]
    # Different models were asked about exactly the same masked copies.
    assert len(seen_a) == len(seen_b) > 1
    for x, y in zip(seen_a, seen_b):
        assert torch.equal(x, y)
    # ... which come from the seeds: other seeds, other masks.
    seen_a.clear()
    with torch.inference_mode():
        mdlm.score_batch(a, ids, attn, [12, 23, 34], spec, tok)
    assert any(not torch.equal(x, y) for x, y in zip(seen_a, seen_b))


@pytest.mark.parametrize("stratify", ["k", "t"])
def test_padding_does_not_change_the_score(stratify):
    tok = make_tokenizer()
    model = tiny_model(tok, seed=5)
    spec = ScoreSpec(batch_size=7, mdlm_draws=8, mdlm_stratify=stratify)
    short = "w3 w1 w4 w1 w5"
    ids1, attn1 = encode(tok, [short])
    ids2, attn2 = encode(tok, ["w9 w2 w6 w5 w3 w5 w8 w9 w7 w9 w3 w2", short])
    with torch.inference_mode():
        alone = mdlm.score_batch(model, ids1, attn1, [99], spec, tok)
        batched = mdlm.score_batch(model, ids2, attn2, [5, 99], spec, tok)
    assert alone[1][0] == batched[1][1] == 5
    assert alone[0][0] == pytest.approx(batched[0][1], rel=1e-5)
    assert alone[2][0] == pytest.approx(batched[2][1], rel=1e-4)


class _NoMaskNet(torch.nn.Module):
    """Stands in for a remote-code checkpoint whose forward takes no attention mask
    (kuleshov-group/mdlm-owt): it checks it is never handed a padded row."""

    def __init__(self, inner, pad_id):
        super().__init__()
        self.inner, self.pad_id = inner, pad_id

    def forward(self, input_ids=None):
        assert not (input_ids == self.pad_id).any(), "padded row given to a mask-less model"
        return self.inner(input_ids, None)


def test_backbone_without_padding_mask_gets_equal_length_chunks():
    tok = make_tokenizer()
    model = tiny_model(tok, seed=6)
    nomask = MaskedLM(
        _NoMaskNet(model.net, tok.pad_token_id),
        "hf-nomask",
        model.mask_token_id,
        model.special_ids.tolist(),
        model.vocab_size,
    )
    assert not nomask.supports_padding_mask
    ids, attn = encode(tok, ["w1 w2 w3", "w4 w5 w6 w7 w8", "w9 w10 w11", "w12"])
    spec = ScoreSpec(batch_size=5, mdlm_draws=4)
    with torch.inference_mode():
        ref = mdlm.score_batch(model, ids, attn, [1, 2, 3, 4], spec, tok)
        got = mdlm.score_batch(nomask, ids, attn, [1, 2, 3, 4], spec, tok)
    assert got[1] == ref[1]
    assert got[0] == pytest.approx(ref[0], rel=1e-5)


def test_save_and_load_round_trip(tmp_path):
    tok = make_tokenizer()
    model = tiny_model(tok, seed=7)
    mdlm.save_model(model, str(tmp_path))
    spec = ModelSpec(kind="mdlm", n_layer=2, n_embd=32, n_head=2, max_len=64)
    loaded = mdlm.load_model(spec, tok, str(tmp_path)).eval()
    ids, attn = encode(tok, ["w1 w2 w3 w4", "w5 w6"])
    sspec = ScoreSpec(mdlm_draws=4)
    with torch.inference_mode():
        assert mdlm.score_batch(model, ids, attn, [1, 2], sspec, tok) == mdlm.score_batch(
            loaded, ids, attn, [1, 2], sspec, tok
        )


# ------------------------------------------------------------ classification ----
def synthetic_two_class(n_per_class, seed, purity=0.9):
    """Class "a" draws 90% of its tokens from w0..w7, class "b" from w8..w15."""
    g = torch.Generator().manual_seed(seed)
    half = N_WORDS // 2
    data = []
    for label, own in (("a", 0), ("b", half)):
        for _ in range(n_per_class):
            length = int(torch.randint(6, 13, (1,), generator=g))
            words = []
            for _ in range(length):
                base = own if float(torch.rand(1, generator=g)) < purity else half - own
                words.append(f"w{base + int(torch.randint(half, (1,), generator=g))}")
            data.append((" ".join(words), label))
    return data


def train_tiny(kind, tok, texts, steps=150, seed=0):
    torch.manual_seed(seed)
    spec = ModelSpec(kind="mdlm", n_layer=2, n_embd=32, n_head=2, max_len=32)
    model = kind.build_model(spec, tok, None).train()
    ids, attn = encode(tok, texts)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        rows = torch.randint(len(texts), (16,), generator=g)
        width = int(attn[rows].sum(1).max())
        loss, _ = kind.train_loss(model, ids[rows, :width], attn[rows, :width], g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def classify(kind, tok, class_models, test, score_spec):
    ids, attn = encode(tok, [t for t, _ in test])
    seeds = list(range(1000, 1000 + len(test)))
    nll = {}
    with torch.inference_mode():
        for label, model in class_models.items():
            nll[label] = kind.score_batch(model, ids, attn, seeds, score_spec, tok)[0]
    labels = list(class_models)
    pred = [min(labels, key=lambda c: nll[c][i]) for i in range(len(test))]
    return sum(p == y for p, (_, y) in zip(pred, test)) / len(test)


def test_two_class_synthetic_is_classified():
    tok = make_tokenizer()
    train = synthetic_two_class(60, seed=0)
    test = synthetic_two_class(25, seed=1)
    class_models = {c: train_tiny(mdlm, tok, [t for t, y in train if y == c], seed=i) for i, c in enumerate(("a", "b"))}
    acc = classify(mdlm, tok, class_models, test, ScoreSpec(batch_size=64, mdlm_draws=8))
    assert acc >= 0.9, acc
