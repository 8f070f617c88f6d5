"""bootstrap/verify.py runs a tiny kernel on every GPU, so a torch without kernels for one
(it imports, then "no kernel image is available for execution on the device") fails verify,
naming the GPU.  The host script is loaded from its file; torch is a fake that fails the way
the real one does on a GPU its build has no code for."""

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest

VERIFY = Path(__file__).resolve().parents[2] / "bootstrap" / "verify.py"


@pytest.fixture()
def verify():
    spec = importlib.util.spec_from_file_location("orch_verify_under_test", VERIFY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeTensor:
    def __init__(self, values):
        self.values = values

    def __mul__(self, k):
        return FakeTensor([v * k for v in self.values])

    def __add__(self, k):
        return FakeTensor([v + k for v in self.values])

    def sum(self):
        return FakeTensor([sum(self.values)])

    def item(self):
        return self.values[0]


def fake_torch(gpus, arch_list, version="2.11.0+cu130", cuda="13.0"):
    """gpus: [(name, (major, minor))]; a kernel on a GPU arch_list has no code for raises
    torch's own error."""
    torch = types.ModuleType("torch")
    torch.__version__ = version
    torch.version = types.SimpleNamespace(cuda=cuda)
    torch.float32 = "float32"
    torch._C = types.SimpleNamespace(_GLIBCXX_USE_CXX11_ABI=True)

    def arange(n, device="cpu", dtype=None):
        index = int(device.split(":")[1])
        cc = gpus[index][1]
        if not any(a == "sm_%d%d" % cc or (a.startswith("sm_%d" % cc[0]) and int(a[-1]) <= cc[1]) for a in arch_list):
            raise RuntimeError(
                "CUDA error: no kernel image is available for execution on the device\n"
                "CUDA kernel errors might be asynchronously reported at some other API call"
            )
        return FakeTensor(list(range(n)))

    torch.arange = arange
    torch.cuda = types.SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: len(gpus),
        get_arch_list=lambda: list(arch_list),
        get_device_capability=lambda i: gpus[i][1],
        get_device_name=lambda i: gpus[i][0],
        get_device_properties=lambda i: types.SimpleNamespace(
            name=gpus[i][0], major=gpus[i][1][0], minor=gpus[i][1][1], total_memory=2**34
        ),
    )
    return torch


CU130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]


def test_a_gpu_the_build_has_no_kernels_for_fails_verify_naming_it(verify):
    torch = fake_torch([("NVIDIA H200", (9, 0)), ("Tesla V100-SXM2-32GB", (7, 0))], CU130)
    out = verify.gpu_kernels(torch)
    assert out["status"] == "failed" and out["arch_list"] == CU130
    assert out["device"] == "GPU 0 NVIDIA H200 (sm_90)"
    assert out["error"].startswith(
        "GPU 1 Tesla V100-SXM2-32GB (sm_70): RuntimeError: CUDA error: no kernel image is available for "
        "execution on the device (this torch, 2.11.0+cu130 with CUDA 13.0, has code for sm_75 sm_80"
    )
    assert "cu126" in out["diagnosis"]


def test_gpus_the_build_serves_pass(verify):
    torch = fake_torch([("NVIDIA H200", (9, 0)), ("NVIDIA L40S", (8, 9))], CU130)
    out = verify.gpu_kernels(torch)
    assert out.get("status", "ok") == "ok" and "error" not in out
    assert out["device"] == "GPU 0 NVIDIA H200 (sm_90), GPU 1 NVIDIA L40S (sm_89)"


def test_the_whole_verify_fails_and_says_which_gpu(verify, monkeypatch, tmp_path):
    torch = fake_torch([("Tesla P100-PCIE-16GB", (6, 0))], CU130)
    monkeypatch.setitem(sys.modules, "torch", torch)
    rc = verify.main(["--expect-cuda", "--out", str(tmp_path / "verify.json")])
    res = json.loads((tmp_path / "verify.json").read_text())
    assert rc == 1 and res["ok"] is False
    check = res["checks"]["gpu_kernels"]
    assert check["status"] == "failed" and "GPU 0 Tesla P100-PCIE-16GB (sm_60)" in check["error"]


def test_arch_list_coverage(verify):
    assert verify.covers(["sm_50", "sm_60", "sm_70"], (6, 1))
    assert verify.covers(["sm_80", "sm_86"], (8, 9))
    assert not verify.covers(["sm_75", "sm_80"], (7, 0))
    assert not verify.covers(["sm_90"], (10, 0))
    assert verify.covers(["sm_90", "compute_90"], (10, 0))  # PTX: the driver compiles it
    assert not verify.covers(["compute_120"], (9, 0))
    assert not verify.covers(["", "sm_", "bogus"], (9, 0))
