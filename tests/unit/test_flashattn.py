"""flash-attn resolution (wheel / source / unsupported) and torch CUDA-variant selection,
table-driven over real host combinations."""

import pytest

from orchestrator.provision import flashattn as fa
from orchestrator.provision.flashattn import FAInputs
from orchestrator.provision.torch_select import predicted_cxx11_abi, select_torch, variant_cuda

A100 = dict(compute_caps=[(8, 0)], gpu_names=["NVIDIA A100-SXM4-80GB"])
H200 = dict(compute_caps=[(9, 0)], gpu_names=["NVIDIA H200"])
RTX4090 = dict(compute_caps=[(8, 9)], gpu_names=["NVIDIA GeForce RTX 4090"])
T4 = dict(compute_caps=[(7, 5)], gpu_names=["Tesla T4"])
V100 = dict(compute_caps=[(7, 0)], gpu_names=["Tesla V100-SXM2-16GB"])
B200 = dict(compute_caps=[(10, 0)], gpu_names=["NVIDIA B200"])

CASES = [
    # id, inputs, pinned version, expected kind, expected version, expected wheel / reason words
    (
        "seed pin: fa 2.5.6 + torch 2.2 + CUDA 12.1 + py3.9 + A100",
        FAInputs(
            **A100,
            driver_cuda="12.2",
            torch_version="2.2.2",
            torch_cuda="12.1",
            python="3.9",
            glibc="2.31",
            ram_gb=250,
            cpus=32,
        ),
        "2.5.6",
        "wheel",
        "2.5.6",
        "flash_attn-2.5.6+cu122torch2.2cxx11abiFALSE-cp39-cp39-linux_x86_64.whl",
    ),
    (
        "H200, driver 580, torch 2.11+cu130 (the fixture host): no wheel -> source, sm90 only, system nvcc 13",
        FAInputs(
            **H200,
            driver_cuda="13.0",
            torch_version="2.11.0",
            torch_cuda="13.0",
            python="3.12",
            cxx11_abi=True,
            glibc="2.39",
            nvcc_version="13.0",
            nvcc_path="/usr/local/cuda/bin/nvcc",
            ram_gb=124,
            cpus=16,
        ),
        "auto",
        "source",
        "2.8.3.post1",
        "no wheel for torch 2.11",
    ),
    (
        "H100, torch 2.8+cu128: newest release wheel",
        FAInputs(
            compute_caps=[(9, 0)],
            driver_cuda="12.8",
            torch_version="2.8.0",
            torch_cuda="12.8",
            python="3.11",
            cxx11_abi=True,
            glibc="2.35",
            ram_gb=200,
            cpus=32,
        ),
        "auto",
        "wheel",
        "2.8.3.post1",
        "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp311-cp311-linux_x86_64.whl",
    ),
    (
        "RTX 4090 (sm89), torch 2.5.1+cu124",
        FAInputs(
            **RTX4090,
            driver_cuda="12.4",
            torch_version="2.5.1",
            torch_cuda="12.4",
            python="3.11",
            glibc="2.35",
            ram_gb=60,
            cpus=16,
        ),
        "auto",
        "wheel",
        "2.8.3.post1",
        "flash_attn-2.8.3.post1+cu12torch2.5cxx11abiFALSE-cp311-cp311-linux_x86_64.whl",
    ),
    (
        "T4 (Turing): unsupported",
        FAInputs(**T4, driver_cuda="12.2", torch_version="2.5.1", torch_cuda="12.1", python="3.11"),
        "auto",
        "unsupported",
        "",
        "Turing",
    ),
    (
        "V100 (Volta): unsupported",
        FAInputs(**V100, driver_cuda="12.2", torch_version="2.5.1", torch_cuda="12.1", python="3.11"),
        "auto",
        "unsupported",
        "",
        "Volta",
    ),
    (
        "B200 + torch 2.7 cu128: fa >= 2.8 wheel (built with CUDA 12.9)",
        FAInputs(
            **B200,
            driver_cuda="12.8",
            torch_version="2.7.1",
            torch_cuda="12.8",
            python="3.11",
            glibc="2.35",
            ram_gb=1500,
            cpus=200,
        ),
        "auto",
        "wheel",
        "2.8.3.post1",
        "flash_attn-2.8.3.post1+cu12torch2.7cxx11abiTRUE-cp311-cp311-linux_x86_64.whl",
    ),
    (
        "B200 pinned to 2.7.4.post1: needs >= 2.8",
        FAInputs(**B200, driver_cuda="12.8", torch_version="2.6.0", torch_cuda="12.8", python="3.11", glibc="2.35"),
        "2.7.4.post1",
        "unsupported",
        "",
        "needs flash-attn >= 2.8",
    ),
    (
        "B200 with a cu126 torch: needs CUDA >= 12.8",
        FAInputs(**B200, driver_cuda="12.8", torch_version="2.7.1", torch_cuda="12.6", python="3.11", glibc="2.35"),
        "auto",
        "unsupported",
        "",
        "CUDA >= 12.8",
    ),
    (
        "B200 source build with nvcc 12.4 is refused: sm100 needs nvcc >= 12.8",
        FAInputs(
            **B200,
            driver_cuda="12.8",
            torch_version="2.9.0",
            torch_cuda="12.8",
            python="3.11",
            glibc="2.35",
            nvcc_version="12.4",
            nvcc_path="/usr/local/cuda/bin/nvcc",
        ),
        "auto",
        "unsupported",
        "",
        "older than 12.8",
    ),
    (
        "glibc 2.31 (Ubuntu 20.04): the newest wheels need 2.32 -> the newest ubuntu-20.04-built release",
        FAInputs(**RTX4090, driver_cuda="12.4", torch_version="2.5.1", torch_cuda="12.4", python="3.11", glibc="2.31"),
        "auto",
        "wheel",
        "2.7.4.post1",
        "flash_attn-2.7.4.post1+cu12torch2.5cxx11abiFALSE-cp311-cp311-linux_x86_64.whl",
    ),
    (
        "glibc 2.28 pinned to a new wheel (2.8.3.post1) -> source build with conda's nvcc",
        FAInputs(
            **A100,
            driver_cuda="12.4",
            torch_version="2.5.1",
            torch_cuda="12.4",
            python="3.11",
            glibc="2.28",
            conda_available=True,
            ram_gb=64,
            cpus=32,
        ),
        "2.8.3.post1",
        "source",
        "2.8.3.post1",
        "glibc >= 2.32",
    ),
    (
        "glibc 2.28 pinned to a new wheel, venv without nvcc -> not possible, says why",
        FAInputs(**A100, driver_cuda="12.4", torch_version="2.5.1", torch_cuda="12.4", python="3.11", glibc="2.28"),
        "2.8.3.post1",
        "unsupported",
        "",
        "GLIBC_2.32",
    ),
    (
        "CPU torch on a GPU host",
        FAInputs(**H200, driver_cuda="13.0", torch_version="2.13.0", torch_cuda=None, python="3.11"),
        "auto",
        "unsupported",
        "",
        "CPU build",
    ),
    (
        "no GPU at all",
        FAInputs(torch_version="2.5.1", torch_cuda="12.4", python="3.11"),
        "auto",
        "unsupported",
        "",
        "no NVIDIA GPU",
    ),
    (
        "seed pin on aarch64: 2.5.6 wheels are x86_64 only -> source with conda nvcc 12.1",
        FAInputs(
            **H200,
            driver_cuda="12.4",
            torch_version="2.2.2",
            torch_cuda="12.1",
            python="3.9",
            arch="aarch64",
            conda_available=True,
            ram_gb=480,
            cpus=72,
        ),
        "2.5.6",
        "source",
        "2.5.6",
        "no aarch64 wheels",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_resolution_table(case):
    _, inp, version, kind, fa_version, words = case
    res = fa.resolve(inp, version=version)
    text = " ".join([res.wheel, res.reason, *res.notes])
    assert res.kind == kind, res
    assert res.version == fa_version
    assert words in text, text
    if kind == "wheel":
        assert res.url == f"https://github.com/Dao-AILab/flash-attention/releases/download/v{fa_version}/{res.wheel}"
    if kind == "unsupported":
        assert "SDPA" in res.reason


def test_h200_source_build_details():
    res = fa.resolve(CASES[1][1])
    assert res.env == {
        "FLASH_ATTENTION_FORCE_BUILD": "TRUE",
        "MAX_JOBS": "8",
        "NVCC_THREADS": "4",
        "FLASH_ATTN_CUDA_ARCHS": "90",
    }
    assert res.cuda_home == "/usr/local/cuda" and "13.0" in res.nvcc and res.conda_cuda_version == ""
    assert any("newer than any torch" in n for n in res.notes)


def test_source_build_with_a_mismatched_system_nvcc_uses_conda_nvcc():
    inp = FAInputs(
        **A100,
        driver_cuda="13.0",
        torch_version="2.9.0",
        torch_cuda="12.8",
        python="3.11",
        glibc="2.39",
        nvcc_version="13.0",
        nvcc_path="/usr/local/cuda/bin/nvcc",
        conda_available=True,
        ram_gb=40,
        cpus=8,
    )
    res = fa.resolve(inp)
    assert res.kind == "source" and res.conda_cuda_version == "12.8"
    assert "does not match torch's CUDA 12.8" in res.nvcc
    assert res.env["MAX_JOBS"] == "4" and res.env["NVCC_THREADS"] == "2" and res.env["FLASH_ATTN_CUDA_ARCHS"] == "80"
    inp.conda_available = False
    res = fa.resolve(inp)
    assert res.kind == "unsupported" and "major must be equal" in res.reason


def test_old_release_source_build_ignores_cuda_archs():
    inp = FAInputs(
        **H200,
        driver_cuda="12.4",
        torch_version="2.2.2",
        torch_cuda="12.1",
        python="3.9",
        arch="aarch64",
        conda_available=True,
        ram_gb=480,
        cpus=72,
    )
    res = fa.resolve(inp, version="2.5.6")
    assert "FLASH_ATTN_CUDA_ARCHS" not in res.env
    assert any("ignores FLASH_ATTN_CUDA_ARCHS" in n for n in res.notes)
    assert res.conda_cuda_version == "12.1"


def test_not_wanted_and_mixed_gpus():
    assert fa.resolve(FAInputs(**A100), wanted=False).kind == "skip"
    mixed = FAInputs(
        compute_caps=[(8, 0), (7, 5)],
        gpu_names=["A100", "T4"],
        torch_version="2.5.1",
        torch_cuda="12.4",
        python="3.11",
        glibc="2.35",
    )
    res = fa.resolve(mixed)
    assert res.kind == "wheel" and any("T4" in n for n in res.notes)


def test_unknown_pinned_version_is_tried_from_source():
    inp = CASES[1][1]
    res = fa.resolve(inp, version="2.9.0")
    assert res.kind == "source" and res.version == "2.9.0"
    assert any("not in the built-in release table" in n for n in res.notes)


@pytest.mark.parametrize("ram,cpus,jobs", [(125, 16, 8), (64, 64, 7), (16, 32, 1), (8, 4, 1), (1000, 8, 4)])
def test_max_jobs(ram, cpus, jobs):
    assert fa.max_jobs(ram, cpus) == jobs


def test_cuda_archs_and_wheel_names():
    assert fa.cuda_archs([(8, 6), (8, 9)]) == "80"
    assert fa.cuda_archs([(8, 0), (9, 0), (10, 0), (12, 0)]) == "80;90;100;120"
    # v2.5.6 hard-codes the platform; later versions use the machine
    assert fa.wheel_name("2.5.6", "122", "2.2", False, "3.9", "aarch64").endswith("linux_x86_64.whl")
    assert fa.wheel_name("2.8.3.post1", "12", "2.8", True, "3.12", "aarch64").endswith("cp312-cp312-linux_aarch64.whl")


@pytest.mark.parametrize(
    "log,words",
    [
        ("gcc: fatal error: Killed signal terminated program cc1plus", "out of RAM"),
        ("  Killed\nerror: command '/usr/local/cuda/bin/nvcc' failed", "out of RAM"),
        (
            "RuntimeError:\nThe detected CUDA version (12.9) mismatches the version that was used to compile\n"
            "PyTorch (11.8). Please make sure to use the same CUDA versions.",
            "nvcc 12.9 vs torch built with CUDA 11.8",
        ),
        (
            "UserWarning: Attempted to use ninja as the BuildExtension backend but we could not find ninja.. "
            "Falling back to using the slow distutils backend.",
            "ninja is missing",
        ),
        (
            "ImportError: /x/flash_attn_2_cuda.cpython-39-x86_64-linux-gnu.so: undefined symbol: "
            "_ZN3c105ErrorC2ENS_14SourceLocationESs",
            "undefined symbol",
        ),
        ("ModuleNotFoundError: No module named 'torch'", "build isolation"),
        (
            "OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root.",
            "nvcc / CUDA_HOME",
        ),
        ("ImportError: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.32' not found", "newer glibc"),
        ("conda.exceptions.CondaToSNonInteractiveError: Terms of Service have not been accepted", "Terms of Service"),
        ("RuntimeError: FlashAttention only supports Ampere GPUs or newer.", "not supported by this flash-attn"),
    ],
)
def test_build_log_diagnoses(log, words):
    found = fa.diagnose_log(log)
    assert any(words in what for what, _ in found), found
    assert all(fix for _, fix in found)


def test_exit_137_is_oom_even_without_a_log_line():
    assert any("out of RAM" in w for w, _ in fa.diagnose_log("compiling...", rc=137))
    assert fa.diagnose_log("all good", rc=0) == []


# --- torch CUDA variant selection ---------------------------------------------------------


@pytest.mark.parametrize(
    "driver_cuda,caps,version,variant",
    [
        ("13.0", [(9, 0)], "2.11", "cu130"),  # the fixture host (driver 580)
        ("12.8", [(9, 0)], "2.11", "cu128"),
        ("12.4", [(8, 9)], "2.6", "cu124"),
        ("12.2", [(8, 0)], "2.5", "cu121"),  # driver 535
        ("12.8", [(10, 0)], "2.11", "cu128"),
        ("13.0", [(7, 0)], "2.10", "cu128"),  # CUDA 13, 2.11's cu128 and 2.8's cu129 dropped Volta
    ],
)
def test_torch_auto_selection(driver_cuda, caps, version, variant):
    c = select_torch(driver_cuda=driver_cuda, compute_caps=caps)
    assert (c.version, c.variant, c.blocked) == (version, variant, "")
    assert c.pip_args() == [f"torch=={version}.*", "--index-url", f"https://download.pytorch.org/whl/{variant}"]


@pytest.mark.parametrize(
    "caps, variant",
    [([(8, 0)], "cu126"), ([(9, 0), (8, 0)], "cu126"), ([(10, 0)], "cu128"), ([(7, 0)], "cu126")],
)
def test_gpus_without_a_visible_driver_get_the_lowest_cuda_build_that_fits_them(caps, variant):
    """A Slurm login node: sinfo names the GPUs, nvidia-smi is on the compute nodes only."""
    c = select_torch(driver_cuda="", compute_caps=caps)
    assert (c.version, c.variant, c.blocked) == ("2.11", variant, "")
    assert any("driver is not visible" in n and f"{variant}" in n for n in c.notes), c.notes
    assert select_torch(driver_cuda="", has_gpu=False).variant == "cpu"  # no GPUs anywhere: as before
    pinned = select_torch(driver_cuda="", cuda="cu130", compute_caps=caps)
    assert pinned.variant == "cu130" and not (pinned.blocked and "driver" in pinned.blocked)


def test_torch_pins_and_limits():
    seed = select_torch(version="2.2", driver_cuda="12.2", compute_caps=[(8, 0)])
    assert (seed.requirement, seed.variant) == ("torch==2.2.*", "cu121")
    exact = select_torch(version="2.2.2", cuda="cu118", driver_cuda="12.2")
    assert exact.requirement == "torch==2.2.2" and exact.variant == "cu118" and not exact.blocked
    assert "no cu124 build" in select_torch(version="2.2", cuda="cu124", driver_cuda="12.4").blocked
    assert "needs a driver for CUDA 13" in select_torch(version="2.11", cuda="cu130", driver_cuda="12.8").blocked
    old = select_torch(driver_cuda="11.4")  # R470: cu118 under minor-version compatibility
    assert old.variant == "cu118" and any("minor-version" in n for n in old.notes)
    assert select_torch(driver_cuda="10.2").blocked
    cpu = select_torch(has_gpu=False)
    assert cpu.variant == "cpu" and cpu.index_url.endswith("/cpu")
    newer = select_torch(version="2.13", driver_cuda="13.0")
    assert newer.variant == "cu130" and any("newer than the built-in table" in n for n in newer.notes)
    pre = select_torch(version="preinstalled", preinstalled_version="2.11.0+cu130")
    assert (pre.mode, pre.version, pre.variant, pre.pip_args()) == ("preinstalled", "2.11.0", "cu130", [])
    assert select_torch(version="none").mode == "none"


def test_abi_prediction_and_variant_cuda():
    assert predicted_cxx11_abi("2.7.0") and predicted_cxx11_abi("2.11.0+cu130")
    assert not predicted_cxx11_abi("2.2.2") and not predicted_cxx11_abi("2.6.0")
    assert variant_cuda("cu130") == "13.0" and variant_cuda("cu118") == "11.8" and variant_cuda("cpu") is None
