#!/usr/bin/env python3
"""Prove a bootstrapped env works; print one JSON object (and write it to --out).

Run with the env's own interpreter (by absolute path). Checks:
  gpu_kernels          a tiny kernel on every visible GPU: a torch built without kernels for a
                       GPU (recent CUDA builds dropped Maxwell, Pascal, Volta) imports fine and
                       fails only here, "no kernel image is available for execution on the device"
  bf16_matmul          bf16 matmul vs fp32 on the GPU (on the CPU when there is none)
  sdpa_flash_vs_math   torch SDPA flash backend == math backend within tolerance (GPU, sm80+)
  flash_attn_vs_sdpa   flash-attn (dense and the varlen qkv-packed call MDLM uses) == SDPA
On a CPU host the GPU checks are "skipped" with the reason. Exit 0 when no check failed.
Standard library + torch only; works on python >= 3.7.
"""

import argparse
import json
import os
import platform
import sys
import time
import traceback

TOL = 2e-2  # bf16 has ~3 significant digits


def check(results, name, fn):
    t0 = time.time()
    try:
        out = fn()
    except Exception as exc:  # a check that crashes is a failed check, with the reason
        out = {
            "status": "failed",
            "error": "%s: %s" % (type(exc).__name__, exc),
            "trace": traceback.format_exc(limit=3)[-1500:],
        }
    out.setdefault("status", "ok")
    out["seconds"] = round(time.time() - t0, 3)
    results["checks"][name] = out


def skipped(reason):
    return {"status": "skipped", "reason": reason}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="", help="also write the JSON here (temp-then-rename)")
    ap.add_argument("--expect-flash-attn", action="store_true", help="fail when flash-attn is not importable")
    ap.add_argument("--expect-cuda", action="store_true", help="fail when torch sees no CUDA GPU")
    ap.add_argument("--no-torch-ok", action="store_true", help="an env without torch is fine")
    args = ap.parse_args(argv)

    res = {
        "ok": True,
        "time": time.time(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "torch": None,
        "torch_cuda": None,
        "cxx11_abi": None,
        "cuda_available": False,
        "gpus": [],
        "flash_attn": None,
        "checks": {},
    }
    try:
        import torch
    except Exception as exc:
        res["torch_error"] = "%s: %s" % (type(exc).__name__, exc)
        for name in ("gpu_kernels", "bf16_matmul", "sdpa_flash_vs_math", "flash_attn_vs_sdpa"):
            res["checks"][name] = skipped("torch is not importable")
        res["ok"] = bool(args.no_torch_ok)
        return finish(res, args.out)

    res["torch"] = torch.__version__
    res["torch_cuda"] = torch.version.cuda
    res["cxx11_abi"] = bool(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", False))
    cuda = torch.cuda.is_available()
    res["cuda_available"] = cuda
    if cuda:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            res["gpus"].append(
                {
                    "index": i,
                    "name": p.name,
                    "capability": "%d.%d" % (p.major, p.minor),
                    "memory_gib": round(p.total_memory / 2**30, 1),
                }
            )
    elif args.expect_cuda:
        res["cuda_error"] = (
            "torch %s is a CPU build (no CUDA): it cannot use this host's GPUs" % torch.__version__
            if torch.version.cuda is None
            else "torch.cuda.is_available() is False"
        )
        print("error: " + res["cuda_error"], file=sys.stderr)
    device = "cuda" if cuda else "cpu"
    cc = torch.cuda.get_device_capability(0) if cuda else None
    no_gpu = "no CUDA GPU visible to torch (torch %s, CUDA build %s)" % (torch.__version__, torch.version.cuda)

    def bf16_matmul():
        g = torch.Generator(device="cpu").manual_seed(0)
        a = torch.randn(256, 256, generator=g).to(device)
        b = torch.randn(256, 256, generator=g).to(device)
        ref = a @ b
        out = (a.bfloat16() @ b.bfloat16()).float()
        err = ((out - ref).abs().max() / ref.abs().max()).item()
        return {"status": "ok" if err < TOL else "failed", "device": device, "rel_err": err, "tol": TOL}

    def qkv(shape, dtype):
        g = torch.Generator(device="cpu").manual_seed(1)
        return [torch.randn(*shape, generator=g).to(device=device, dtype=dtype) for _ in range(3)]

    def sdpa(q, k, v, backend):
        """q, k, v: (B, H, L, D). backend: 'flash' | 'math'."""
        import torch.nn.functional as F

        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            ctx = sdpa_kernel(SDPBackend.FLASH_ATTENTION if backend == "flash" else SDPBackend.MATH)
        except ImportError:  # torch < 2.3
            ctx = torch.backends.cuda.sdp_kernel(
                enable_flash=backend == "flash", enable_math=backend == "math", enable_mem_efficient=False
            )
        with ctx:
            return F.scaled_dot_product_attention(q, k, v)

    def sdpa_flash_vs_math():
        if not cuda:
            return skipped(no_gpu)
        if cc < (8, 0):
            return skipped("the SDPA flash backend needs sm80+, this GPU is sm%d%d" % cc)
        q, k, v = qkv((2, 12, 256, 64), torch.bfloat16)  # MDLM small: 12 heads, head_dim 64
        flash = sdpa(q, k, v, "flash").float()
        math = sdpa(q.float(), k.float(), v.float(), "math")
        err = (flash - math).abs().max().item()
        return {"status": "ok" if err < TOL else "failed", "max_abs_err": err, "tol": TOL}

    def flash_attn_vs_sdpa():
        try:
            import flash_attn
        except ImportError as exc:
            if "undefined symbol" in str(exc) or "flash_attn_2_cuda" in str(exc):
                return {
                    "status": "failed",
                    "error": "flash-attn does not import: %s" % exc,
                    "diagnosis": "built for another torch version or C++ ABI; rebuild it",
                }
            if args.expect_flash_attn:
                return {"status": "failed", "error": "flash-attn is not installed: %s" % exc}
            return skipped("flash-attn is not installed (experiments use torch SDPA)")
        res["flash_attn"] = flash_attn.__version__
        from flash_attn import flash_attn_func
        from flash_attn.flash_attn_interface import flash_attn_varlen_qkvpacked_func

        if not cuda:
            return skipped("flash-attn %s imports, but %s" % (flash_attn.__version__, no_gpu))
        if cc < (8, 0):
            return skipped("flash-attn needs sm80+, this GPU is sm%d%d" % cc)
        B, H, L, D = 2, 12, 256, 64
        q, k, v = qkv((B, L, H, D), torch.bfloat16)  # flash-attn layout: (B, L, H, D)
        ref = sdpa(*(t.transpose(1, 2).float() for t in (q, k, v)), "math").transpose(1, 2)
        dense = flash_attn_func(q, k, v).float()
        err_dense = (dense - ref).abs().max().item()
        qkv_packed = torch.stack([q, k, v], dim=2).reshape(B * L, 3, H, D)
        cu_seqlens = torch.arange(0, (B + 1) * L, L, device=device, dtype=torch.int32)
        varlen = flash_attn_varlen_qkvpacked_func(qkv_packed, cu_seqlens, L, 0.0, causal=False)
        err_varlen = (varlen.reshape(B, L, H, D).float() - ref).abs().max().item()
        ok = err_dense < TOL and err_varlen < TOL
        return {
            "status": "ok" if ok else "failed",
            "max_abs_err": err_dense,
            "varlen_max_abs_err": err_varlen,
            "tol": TOL,
            "version": flash_attn.__version__,
        }

    check(res, "gpu_kernels", lambda: gpu_kernels(torch) if cuda else skipped(no_gpu))
    check(res, "bf16_matmul", bf16_matmul)
    check(res, "sdpa_flash_vs_math", sdpa_flash_vs_math)
    check(res, "flash_attn_vs_sdpa", flash_attn_vs_sdpa)
    res["ok"] = all(c["status"] != "failed" for c in res["checks"].values())
    if args.expect_cuda and not cuda:
        res["ok"] = False
    return finish(res, args.out)


def covers(arch_list, cc):
    """Does torch.cuda.get_arch_list() (['sm_70', 'sm_90', 'compute_90']) hold code for a GPU of
    capability cc?  A kernel for sm_XY runs on sm_XZ with Z >= Y; PTX (compute_XY) is compiled
    by the driver for any GPU >= XY."""
    for arch in arch_list:
        kind, _, num = str(arch).partition("_")
        if not num.isdigit() or len(num) < 2:
            continue
        major, minor = int(num[:-1]), int(num[-1])
        if kind == "sm" and major == cc[0] and minor <= cc[1]:
            return True
        if kind == "compute" and (major, minor) <= tuple(cc):
            return True
    return False


def gpu_kernels(torch):
    """Run a tiny kernel on every visible GPU; say which GPU torch has no code for."""
    arch_list = list(torch.cuda.get_arch_list())
    seen, bad = [], []
    for i in range(torch.cuda.device_count()):
        cc = tuple(torch.cuda.get_device_capability(i))
        name = torch.cuda.get_device_name(i)
        where = "GPU %d %s (sm_%d%d)" % (i, name, cc[0], cc[1])
        try:
            x = torch.arange(64, device="cuda:%d" % i, dtype=torch.float32)
            got = float((x * 2 + 1).sum().item())  # sum of the first 64 odd numbers
            err = None if got == 4096.0 else "wrong result %r (expected 4096)" % got
        except Exception as exc:  # "no kernel image is available for execution on the device"
            err = "%s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        if err is None:
            seen.append(where)
            continue
        why = where + ": " + err
        if not covers(arch_list, cc):
            why += " (this torch, %s with CUDA %s, has code for %s only, not sm_%d%d)" % (
                torch.__version__,
                torch.version.cuda,
                " ".join(arch_list) or "no GPU",
                cc[0],
                cc[1],
            )
        bad.append(why)
    out = {"arch_list": arch_list, "device": ", ".join(seen) or "none"}
    if bad:
        out["status"] = "failed"
        out["error"] = "; ".join(bad) + "; this env needs a torch build with kernels for every GPU"
        out["diagnosis"] = (
            "install a torch build with kernels for every GPU (the cu126 builds keep Maxwell, Pascal and Volta): "
            "pin torch.version / torch.cuda in the env spec, or rerun `orch bootstrap HOST`, which picks one"
        )
    return out


def finish(res, out):
    text = json.dumps(res, sort_keys=True)
    if out:
        tmp = "%s.tmp.%d" % (out, os.getpid())
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, out)
    print(text)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
