"""Benchmark the host-side payload: training tokens/s and scoring sequences/s per model
kind, and the accuracy/cost curve of MDLM scoring against the number of draws K.

Throughput runs the real code paths (``remote.kinds.<kind>.train_loss`` /
``score_batch``, ``remote.train.make_optimizer``, bf16 autocast) on random token ids at
full length (no padding), GPT-2-124M shape by default: 12 layers, 768 wide, 12 heads,
512 tokens, vocabulary 50257 (+ our 5 special tokens).

    python bench/bench_remote.py                         # all kinds, eager and compiled, on the GPU
    python bench/bench_remote.py --kinds ar --compile on --batch 32
    python bench/bench_remote.py --tiny                  # CPU sanity check: tiny shape, seconds

The MDLM curve trains one MDLM per class on ``--curve-data`` through ``remote.run_job``
(the real jobs), then rescores the test texts with each K, e.g. on IMDB:

    python bench/bench_remote.py --kinds mdlm --compile off \
        --curve-data ../shared/data/imdb/train.jsonl.gz --curve-set train.epochs=2 --curve-max-test 2000

Results are printed and written as a markdown table to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
import traceback
from typing import Dict, List, Optional

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from remote.spec import ModelSpec, ScoreSpec, TrainSpec  # noqa: E402
from remote.train import autocast, compiled, make_optimizer  # noqa: E402

ALL_KINDS = ["ar", "mdlm", "mlm-pll", "classifier"]


def synthetic_tokenizer(vocab_size: int):
    """A word-level tokenizer with ``vocab_size`` entries + our specials: throughput only
    depends on the vocabulary size, and training a 50k BPE would dominate the run."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from remote.tokenizer import SPECIALS

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    vocab.update({f"w{i}": len(SPECIALS) + i for i in range(vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=1_000_000,
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, warmup: int, iters: int, budget_s: float):
    """(seconds, calls): ``iters`` timed calls after ``warmup``, fewer (at least 2) when
    they would take more than ``budget_s`` (PLL scoring is hundreds of passes a call)."""
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    done = 0
    while done < iters:
        fn()
        done += 1
        if done >= 2 and time.perf_counter() - t0 > budget_s:
            break
    sync(device)
    return time.perf_counter() - t0, done


def bench_kind(name: str, spec: ModelSpec, tok, args, use_compile: bool, device: torch.device) -> Dict:
    from remote.kinds import get_kind

    kind = get_kind(name)
    extra_build = {"num_labels": 2} if getattr(kind, "needs_labels", False) else {}
    torch.manual_seed(0)
    model = kind.build_model(spec, tok, None, **extra_build).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    B, L = args.batch, args.seq
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    ids = torch.randint(len(tok) - args.vocab, len(tok), (B, L), device=device, generator=gen)
    ids[:, 0], ids[:, -1] = tok.bos_token_id, tok.eos_token_id
    mask = torch.ones_like(ids)
    labels = {"labels": torch.randint(0, 2, (B,), device=device)} if extra_build else {}
    dtype = args.dtype
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats(device)

    # --- training: forward + backward + AdamW step, as in remote/train.py
    opt = make_optimizer(model, TrainSpec(lr=1e-4), device)
    loss_fn, fwd = compiled(kind.train_loss, kind, model, use_compile)  # what remote/train.py compiles
    model.train()

    def train_step():
        with autocast(device, dtype):
            loss, _ = loss_fn(fwd, ids, mask, gen, **labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    t, n = timed(train_step, device, args.warmup, args.iters, args.budget)
    train_tok_s = B * L * n / t
    train_mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    opt = None  # free the optimizer state before scoring
    model.zero_grad(set_to_none=True)

    # --- scoring: what remote/score.py runs for every test text
    model.eval()
    # PLL runs one forward pass per token of a text: a few texts make a long call.
    sb = args.pll_texts if name == "mlm-pll" else args.score_batch
    sids, smask = ids[:1].expand(sb, L).contiguous(), mask[:1].expand(sb, L).contiguous()
    score_spec = ScoreSpec(batch_size=sb, mdlm_draws=args.mdlm_k)
    # what remote/score.py compiles
    score_fn, score_fwd = compiled(kind.score_batch, kind, model, use_compile, dynamic=True)
    seeds = list(range(sb))

    def score_step():
        with torch.inference_mode(), autocast(device, dtype):
            score_fn(score_fwd, sids, smask, seeds, score_spec, tok)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t, n = timed(score_step, device, 1 if name == "mlm-pll" else args.warmup, args.iters, args.budget)
    score_seq_s = sb * n / t
    score_mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    note = {"mdlm": f"K={args.mdlm_k} draws/text", "mlm-pll": f"L passes/text, {sb} texts/call"}.get(name, "")
    return {
        "kind": name,
        "compile": use_compile,
        "params_m": n_params / 1e6,
        "train_tok_s": train_tok_s,
        "score_seq_s": score_seq_s,
        "train_mem": train_mem,
        "score_mem": score_mem,
        "note": note,
    }


def mdlm_curve(args, device: torch.device) -> List[Dict]:
    """Accuracy and scoring cost of MDLM against K, on class models trained by real jobs."""
    import yaml

    from remote import checkpoint, run_job
    from remote import tokenizer as tokenizers
    from remote.data import load_splits
    from remote.kinds import get_kind
    from remote.score import score_texts
    from remote.spec import load_experiment, set_dotted, to_dict

    raw = yaml.safe_load(open(os.path.join(ROOT, "configs", "experiments", "smoke.yaml")))
    overrides = {
        "model.kind": "mdlm",
        "data.path": os.path.abspath(args.curve_data),
        "train.device": device.type,
        "train.steps": args.curve_steps,
        "score.mdlm_draws": max(args.curve_k),
    }
    if not args.tiny:
        overrides.update(
            {
                "model.n_layer": 6,
                "model.n_embd": 512,
                "model.n_head": 8,
                "model.max_len": args.seq,
                "model.vocab_size": 16000,
                "train.batch_size": 32,
                "train.lr": 3e-4,
                "train.log_every": 50,
                "score.batch_size": 64,
                "data.max_test": args.curve_max_test,
            }
        )
    for item in args.curve_set:
        key, value = item.split("=", 1)
        overrides[key] = yaml.safe_load(value)
    for key, value in overrides.items():
        set_dotted(raw, key, value)
    exp = load_experiment(raw, "bench mdlm curve")
    splits = load_splits(exp.data, log=lambda m: None)
    run_dir = tempfile.mkdtemp(prefix="bench-mdlm-")
    jobs = [
        {"name": f"c{i}", "role": "class", "label": c, "requires": [], "after": [], "gpu": ""}
        for i, c in enumerate(splits.classes)
    ]
    with open(os.path.join(run_dir, "run.yaml"), "w") as f:
        yaml.safe_dump({"run_id": "bench", "experiment": to_dict(exp), "jobs": jobs}, f)
    t0 = time.time()
    for j in jobs:
        if run_job.main(["--run-dir", run_dir, "--job", j["name"]]) != 0:
            raise RuntimeError(f"training class job {j['name']} failed (see above)")
    train_s = time.time() - t0

    kind = get_kind("mdlm")
    models = []
    for j in jobs:
        model, tok = checkpoint.load_final(
            checkpoint.final_dir(os.path.join(run_dir, "jobs", j["name"])), kind, exp.model
        )
        models.append(model.to(device).eval())
    ids = tokenizers.encode(tok, [e.text for e in splits.test], exp.model.max_len)
    text_ids = [e.id for e in splits.test]
    rows = []
    for k in args.curve_k:
        spec = ScoreSpec(
            batch_size=exp.score.batch_size, mdlm_draws=k, mdlm_stratify=exp.score.mdlm_stratify, seed=exp.score.seed
        )
        sync(device)
        t1 = time.time()
        per_class = [
            score_texts(m, kind, ids, text_ids, spec, tok, dtype=exp.train.dtype, job_dir=run_dir, log=lambda m: None)
            for m in models
        ]
        sync(device)
        secs = time.time() - t1
        correct, ses = 0, []
        for i, e in enumerate(splits.test):
            nlls = [res[i][0] for res in per_class]
            correct += splits.classes[min(range(len(nlls)), key=nlls.__getitem__)] == e.label
            ses.extend(res[i][2] for res in per_class if res[i][2] is not None)
        rows.append(
            {
                "k": k,
                "accuracy": correct / len(splits.test),
                "se": sum(ses) / len(ses) if ses else None,
                "score_s": secs,
                "texts_s": len(splits.test) * len(models) / secs,
            }
        )
        print(f"mdlm K={k}: accuracy {rows[-1]['accuracy']:.4f}, {secs:.1f}s", flush=True)
    for r in rows:
        r.update(n_test=len(splits.test), train_s=train_s, shape=f"{exp.model.n_layer}L/{exp.model.n_embd}d")
    return rows


def fmt(x, spec=",.0f"):
    return "—" if x is None else format(x, spec)


def markdown(results: List[Dict], curve: Optional[List[Dict]], args, device: torch.device) -> str:
    import transformers

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (no GPU)"
    lines = [
        f"## remote/ benchmark, {datetime.date.today().isoformat()}",
        "",
        f"- device: {gpu}; torch {torch.__version__}; transformers {transformers.__version__}",
        f"- shape: {args.n_layer} layers, {args.n_embd} wide, {args.n_head} heads, {args.seq} tokens, "
        f"vocabulary {args.vocab} + 5; train batch {args.batch}, score batch {args.score_batch}; "
        f"dtype {args.dtype} (auto = bf16 autocast on CUDA)",
        f"- {args.warmup} warm-up + {args.iters} timed iterations each; random token ids, no padding",
        "",
        "| kind | compile | params (M) | train tokens/s | score sequences/s | train mem (GiB) |"
        " score mem (GiB) | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['kind']} | {r['compile']} | | | | | | error: {r['error']} |")
            continue
        lines.append(
            f"| {r['kind']} | {r['compile']} | {r['params_m']:.1f} | {fmt(r['train_tok_s'])} |"
            f" {fmt(r['score_seq_s'], ',.1f')} | {fmt(r['train_mem'], '.1f')} | {fmt(r['score_mem'], '.1f')} |"
            f" {r['note']} |"
        )
    if curve:
        c0 = curve[0]
        lines += [
            "",
            f"### MDLM scoring: accuracy and cost against K ({c0['shape']}, {c0['n_test']} test texts,"
            f" class models trained in {c0['train_s']:.0f}s)",
            "",
            "| K | accuracy | mean SE of one text's NELBO estimate (nats) | scoring s (all classes)"
            " | texts x classes / s |",
            "|---|---|---|---|---|",
        ]
        for r in curve:
            lines.append(
                f"| {r['k']} | {r['accuracy']:.4f} | {fmt(r['se'], '.2f')} | {r['score_s']:.1f} | {r['texts_s']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default=",".join(ALL_KINDS))
    ap.add_argument("--compile", choices=["off", "on", "both"], default="both")
    ap.add_argument("--tiny", action="store_true", help="tiny shape on CPU: a sanity check, not a measurement")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp32"])
    ap.add_argument("--n-layer", type=int, default=12)
    ap.add_argument("--n-embd", type=int, default=768)
    ap.add_argument("--n-head", type=int, default=12)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--batch", type=int, default=16, help="training batch (sequences)")
    ap.add_argument("--score-batch", type=int, default=64)
    ap.add_argument("--pll-texts", type=int, default=4, help="texts per PLL scoring call (each is L passes)")
    ap.add_argument("--mdlm-k", type=int, default=8, help="draws per text when timing MDLM scoring")
    ap.add_argument("--budget", type=float, default=30.0, help="max seconds of timed calls per measurement")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument(
        "--curve",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure MDLM accuracy/cost against K (needs remote/kinds/mdlm.py)",
    )
    ap.add_argument("--curve-data", default=os.path.join(ROOT, "configs", "data", "tiny_sentiment.jsonl"))
    ap.add_argument("--curve-k", default="1,2,4,8,16,32")
    ap.add_argument("--curve-steps", type=int, default=2000)
    ap.add_argument("--curve-max-test", type=int, default=2000)
    ap.add_argument(
        "--curve-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="experiment override for the curve's jobs, e.g. train.epochs=2",
    )
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results.md"))
    args = ap.parse_args()
    if args.tiny:
        args.n_layer, args.n_embd, args.n_head, args.seq, args.vocab = 2, 64, 2, 64, 1000
        args.batch, args.score_batch, args.warmup, args.iters = 8, 8, 1, 3
        args.curve_steps, args.curve_k = 60, "1,4"
        if args.device == "auto":
            args.device = "cpu"
        if args.compile == "both":
            args.compile = "off"
    args.curve_k = [int(k) for k in str(args.curve_k).split(",")]
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    if device.type == "cpu" and args.tiny:
        torch.set_num_threads(1)  # tiny matmuls: extra threads only spin (see TrainSpec.cpu_threads)

    spec = ModelSpec(n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head, max_len=args.seq)
    tok = synthetic_tokenizer(args.vocab)
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    results = []
    for name in args.kinds.split(","):
        for use_compile in modes:
            print(f"--- {name} compile={use_compile}", flush=True)
            try:
                r = bench_kind(name, spec, tok, args, use_compile, device)
                print(
                    f"{name}: train {r['train_tok_s']:,.0f} tokens/s, score {r['score_seq_s']:,.1f} sequences/s",
                    flush=True,
                )
            except Exception as e:  # one kind failing (missing module, OOM) must not lose the others
                traceback.print_exc()
                r = {"kind": name, "compile": use_compile, "error": f"{type(e).__name__}: {str(e)[:120]}"}
            results.append(r)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    curve = None
    if args.curve and "mdlm" in args.kinds.split(","):
        try:
            curve = mdlm_curve(args, device)
        except Exception as e:
            traceback.print_exc()
            print(f"MDLM curve skipped: {type(e).__name__}: {e}", flush=True)
    text = markdown(results, curve, args, device)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
