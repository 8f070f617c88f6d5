"""Decide how (and whether) flash-attn 2 can be installed on a host. Pure.

Inputs are facts (GPU compute capabilities, the driver's CUDA, torch version and the
CUDA it was built with, python tag, C++11 ABI flag, glibc, arch, nvcc, RAM, cores) and
the env spec's wish (version pin, wanted/required). The output is one of:

- ``wheel``: a prebuilt release wheel exists for exactly this combination (named, URL);
- ``source``: build a pinned version from source, with the env vars that keep the build
  small and safe (FLASH_ATTN_CUDA_ARCHS, MAX_JOBS, NVCC_THREADS, CUDA_HOME) and an nvcc
  whose major matches torch's CUDA major (the system one, or conda's cuda-nvcc);
- ``unsupported``: it cannot work here (pre-Ampere GPU, CPU torch, no compatible version)
  — experiments then use torch SDPA — with the reason;
- ``skip``: the env spec does not want it.

Facts come from github.com/Dao-AILab/flash-attention at each tag in RELEASES: setup.py (the
wheel name and URL, nvcc minimum, python_requires, the build's env vars), the README, and
.github/workflows/publish.yml (which torch / CUDA / python / platform got wheels).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from orchestrator.provision.torch_select import minor_of, predicted_cxx11_abi, vtuple

URL = "https://github.com/Dao-AILab/flash-attention/releases/download/v{version}/{wheel}"
PIP_DEPS = ["packaging", "psutil", "ninja", "einops", "wheel", "setuptools"]


@dataclass(frozen=True)
class Release:
    version: str
    nvcc_min: str  # setup.py's hard minimum
    python_min: str  # python_requires
    wheel_torch: Tuple[str, ...]  # torch major.minor with official wheels
    wheel_cuda: Tuple[str, ...]  # the CU tags in the wheel names ("118", "122", or "12")
    wheel_python: Tuple[str, str]  # oldest, newest python with wheels
    wheel_glibc_min: str  # "" = built on ubuntu-20.04 (runs on older glibc), else the floor
    wheel_arches: Tuple[str, ...]  # platforms with wheels
    blackwell: bool  # wheels/runtime contain sm_100/sm_120 kernels
    runtime_any_ge_sm80: bool  # runtime check is cc_major >= 8 (v2.7.3+), else sm8x or sm90 only
    cuda_archs_env: bool  # FLASH_ATTN_CUDA_ARCHS is honoured (v2.7.3+)
    torch_min: str  # README minimum torch for a source build
    wheel_excludes: Tuple[Tuple[str, str], ...] = ()  # (torch minor, python) without a wheel
    notes: str = ""

    def cu_tag(self, torch_cuda: str) -> Optional[str]:
        """setup.py's CU tag for torch.version.cuda (None: no wheel for that CUDA major)."""
        major = vtuple(torch_cuda)[0]
        for tag in self.wheel_cuda:
            if len(tag) <= 2 and int(tag) == major:  # v2.7.0+: major only
                return tag
            if len(tag) == 3 and int(tag[:2]) == major:  # 118 / 122 / 123
                return tag
        return None


def _torch_range(first: str, last: str) -> Tuple[str, ...]:
    out = []
    major, minor = vtuple(first)[:2]
    lmajor, lminor = vtuple(last)[:2]
    while (major, minor) <= (lmajor, lminor):
        out.append(f"{major}.{minor}")
        if major == 1 and minor == 13:
            major, minor = 2, 0
        else:
            minor += 1
    return tuple(out)


# Newest first. Wheels were built for x86_64 only in these releases.
RELEASES: Tuple[Release, ...] = (
    Release(
        version="2.8.3.post1",
        nvcc_min="11.7",
        python_min="3.9",
        wheel_torch=_torch_range("2.4", "2.8"),
        wheel_cuda=("12",),
        wheel_python=("3.9", "3.13"),
        wheel_glibc_min="2.32",
        wheel_arches=("x86_64",),
        blackwell=True,
        runtime_any_ge_sm80=True,
        cuda_archs_env=True,
        torch_min="2.2",
        wheel_excludes=(("2.4", "3.13"),),
        notes="wheel-name fix for CUDA 13 torch (#2618)",
    ),
    Release(
        version="2.8.0.post2",
        nvcc_min="11.7",
        python_min="3.9",
        wheel_torch=_torch_range("2.4", "2.7"),
        wheel_cuda=("12",),
        wheel_python=("3.9", "3.13"),
        wheel_glibc_min="2.32",
        wheel_arches=("x86_64",),
        blackwell=True,
        runtime_any_ge_sm80=True,
        cuda_archs_env=True,
        torch_min="2.2",
    ),
    Release(
        version="2.7.4.post1",
        nvcc_min="11.7",
        python_min="3.9",
        wheel_torch=_torch_range("2.2", "2.6"),
        wheel_cuda=("12",),
        wheel_python=("3.9", "3.13"),
        wheel_glibc_min="",
        wheel_arches=("x86_64",),
        blackwell=False,
        runtime_any_ge_sm80=True,
        cuda_archs_env=True,
        torch_min="2.2",
    ),
    Release(
        version="2.7.0.post2",
        nvcc_min="11.7",
        python_min="3.8",
        wheel_torch=_torch_range("2.1", "2.5"),
        wheel_cuda=("11", "12"),
        wheel_python=("3.8", "3.12"),
        wheel_glibc_min="",
        wheel_arches=("x86_64",),
        blackwell=False,
        runtime_any_ge_sm80=False,
        cuda_archs_env=False,
        torch_min="1.12",
    ),
    Release(
        version="2.6.3",
        nvcc_min="11.6",
        python_min="3.8",
        wheel_torch=_torch_range("2.0", "2.4"),
        wheel_cuda=("118", "123"),
        wheel_python=("3.8", "3.12"),
        wheel_glibc_min="",
        wheel_arches=("x86_64",),
        blackwell=False,
        runtime_any_ge_sm80=False,
        cuda_archs_env=False,
        torch_min="1.12",
    ),
    Release(
        version="2.5.9.post1",
        nvcc_min="11.6",
        python_min="3.7",
        wheel_torch=_torch_range("1.12", "2.3"),
        wheel_cuda=("118", "122"),
        wheel_python=("3.8", "3.12"),
        wheel_glibc_min="",
        wheel_arches=("x86_64",),
        blackwell=False,
        runtime_any_ge_sm80=False,
        cuda_archs_env=False,
        torch_min="1.12",
    ),
    Release(
        version="2.5.6",
        nvcc_min="11.6",
        python_min="3.7",
        wheel_torch=_torch_range("1.12", "2.2"),
        wheel_cuda=("118", "122"),
        wheel_python=("3.7", "3.11"),
        wheel_glibc_min="",
        wheel_arches=("x86_64",),
        blackwell=False,
        runtime_any_ge_sm80=False,
        cuda_archs_env=False,
        torch_min="1.12",
        notes="platform hard-coded linux_x86_64",
    ),
)
RELEASES_BY_VERSION: Dict[str, Release] = {r.version: r for r in RELEASES}


@dataclass
class FAInputs:
    compute_caps: Sequence[Tuple[int, int]] = ()
    gpu_names: Sequence[str] = ()
    driver_cuda: str = ""  # the driver's max CUDA, e.g. "13.0"
    torch_version: str = ""  # "2.11.0" ("" = unknown / not installed)
    torch_cuda: Optional[str] = None  # torch.version.cuda, "13.0"; None = CPU build
    python: str = ""  # "3.12"
    cxx11_abi: Optional[bool] = None  # None: predicted from the torch version (pip wheels)
    glibc: str = ""  # "2.39"
    arch: str = "x86_64"
    nvcc_version: str = ""  # system nvcc "13.0", "" = none
    nvcc_path: str = ""
    conda_available: bool = False  # the env manager can install conda's cuda-nvcc
    ram_gb: float = 0.0  # available RAM
    cpus: int = 1
    ninja: bool = False  # informational: the build step installs and checks ninja anyway


@dataclass
class FAResolution:
    kind: str  # wheel | source | unsupported | skip
    version: str = ""
    wheel: str = ""
    url: str = ""
    reason: str = ""
    env: Dict[str, str] = field(default_factory=dict)  # for source builds
    nvcc: str = ""  # "system:/usr/local/cuda/bin/nvcc (13.0)" | "conda:cuda-nvcc 12.4"
    cuda_home: str = ""  # system CUDA_HOME ("" -> the env prefix for conda nvcc)
    conda_cuda_version: str = ""  # "12.4": install conda-forge cuda-nvcc for this version
    notes: List[str] = field(default_factory=list)
    required: bool = False

    @property
    def installs(self) -> bool:
        return self.kind in ("wheel", "source")

    def describe(self) -> str:
        if self.kind == "wheel":
            return f"prebuilt wheel {self.wheel}"
        if self.kind == "source":
            archs = self.env.get("FLASH_ATTN_CUDA_ARCHS", "80;90 (fixed by this version)")
            return (
                f"source build of flash-attn {self.version} (archs {archs}, MAX_JOBS={self.env.get('MAX_JOBS')}, "
                f"nvcc {self.nvcc})"
            )
        return self.reason

    def to_dict(self) -> dict:
        return asdict(self)


def wheel_name(version: str, cu: str, torch_minor: str, abi: bool, python: str, arch: str) -> str:
    py = "cp" + python.replace(".", "")
    platform = "linux_x86_64" if version == "2.5.6" else f"linux_{arch}"
    return f"flash_attn-{version}+cu{cu}torch{torch_minor}cxx11abi{str(abi).upper()}-{py}-{py}-{platform}.whl"


def wheel_url(version: str, wheel: str) -> str:
    return URL.format(version=version, wheel=wheel)


def max_jobs(ram_gb: float, cpus: int) -> int:
    """flash-attn's own default: each compile job peaks at ~8-9 GB (NVCC_THREADS=4),
    so min(cores/2, RAM_GB/9), at least 1."""
    return max(1, min(max(1, cpus // 2), int(ram_gb // 9)))


def _gpu_problem(rel: Release, caps: Sequence[Tuple[int, int]]) -> str:
    for cc in caps:
        if cc[0] >= 10 and not rel.blackwell:
            return f"Blackwell (sm_{cc[0]}{cc[1]}) needs flash-attn >= 2.8 (built with CUDA >= 12.8)"
        if not rel.runtime_any_ge_sm80 and not (cc[0] == 8 or cc == (9, 0)):
            return f"flash-attn {rel.version}'s runtime check accepts only sm8x/sm90, not sm_{cc[0]}{cc[1]}"
    return ""


def _wheel_problem(rel: Release, inp: FAInputs, abi: bool) -> Tuple[str, str]:
    """(wheel name, '') when a release wheel fits, else ('', why not)."""
    tminor = minor_of(inp.torch_version)
    if inp.arch not in rel.wheel_arches:
        return "", f"no {inp.arch} wheels"
    if tminor not in rel.wheel_torch:
        return "", f"no wheel for torch {tminor} (wheels: torch {rel.wheel_torch[0]}-{rel.wheel_torch[-1]})"
    cu = rel.cu_tag(inp.torch_cuda or "")
    if cu is None:
        return "", f"no wheel for CUDA {vtuple(inp.torch_cuda or '0')[0]}.x torch builds"
    py = vtuple(inp.python)
    if (
        not (vtuple(rel.wheel_python[0]) <= py <= vtuple(rel.wheel_python[1]))
        or (tminor, inp.python) in rel.wheel_excludes
    ):
        return "", f"no wheel for python {inp.python} with torch {tminor}"
    if rel.wheel_glibc_min and inp.glibc and vtuple(inp.glibc) < vtuple(rel.wheel_glibc_min):
        return "", (
            f"its wheels were built on ubuntu-22.04 and need glibc >= {rel.wheel_glibc_min}; "
            f"this host has {inp.glibc} (would fail with GLIBC_{rel.wheel_glibc_min} not found)"
        )
    return wheel_name(rel.version, cu, tminor, abi, inp.python, inp.arch), ""


def _nvcc_plan(rel: Release, inp: FAInputs, res: FAResolution) -> str:
    """Choose the nvcc for a source build; '' when fine, else why it cannot be built."""
    torch_major = vtuple(inp.torch_cuda or "0")[0]
    need = max(
        vtuple(rel.nvcc_min),
        (11, 8) if any(cc[0] == 9 for cc in inp.compute_caps) else (0,),
        (12, 8) if any(cc[0] >= 10 for cc in inp.compute_caps) else (0,),
    )
    need_s = ".".join(str(x) for x in need)
    if inp.nvcc_version:
        sys_v = vtuple(inp.nvcc_version)
        if sys_v[0] == torch_major and sys_v >= need:
            res.nvcc = f"system {inp.nvcc_path or 'nvcc'} ({inp.nvcc_version})"
            if inp.nvcc_path.endswith("/bin/nvcc"):
                res.cuda_home = inp.nvcc_path[: -len("/bin/nvcc")]
            return ""
        why_sys = (
            f"the system nvcc {inp.nvcc_version} does not match torch's CUDA {inp.torch_cuda} (the major must be equal)"
            if sys_v[0] != torch_major
            else f"the system nvcc {inp.nvcc_version} is older than {need_s}"
        )
    else:
        why_sys = "there is no system nvcc"
    if inp.conda_available:
        want = max(vtuple(inp.torch_cuda or "0")[:2], need[:2] if need[0] == torch_major else (0,))
        if want[0] != torch_major:
            return f"{why_sys}, and no CUDA {torch_major}.x nvcc >= {need_s} exists for it"
        res.conda_cuda_version = f"{want[0]}.{want[1]}"
        res.nvcc = f"conda-forge cuda-nvcc {res.conda_cuda_version} in the env ({why_sys})"
        return ""
    return (
        f"{why_sys}; a source build needs nvcc {torch_major}.x (>= {need_s}) to match torch's CUDA "
        f"{inp.torch_cuda}: install that CUDA toolkit and put its bin/ on the host's extra_path, "
        "or use a conda/miniforge env (it installs cuda-nvcc)"
    )


def _source_plan(rel: Release, inp: FAInputs, res: FAResolution) -> str:
    """Fill a source build of rel into res; '' when possible, else why not."""
    if vtuple(inp.python) < vtuple(rel.python_min):
        return f"flash-attn {rel.version} needs python >= {rel.python_min}"
    if inp.torch_version and vtuple(inp.torch_version) < vtuple(rel.torch_min):
        return f"flash-attn {rel.version} needs torch >= {rel.torch_min}"
    problem = _nvcc_plan(rel, inp, res)
    if problem:
        return problem
    res.kind, res.version = "source", rel.version
    jobs = max_jobs(inp.ram_gb, inp.cpus)
    res.env = {
        "FLASH_ATTENTION_FORCE_BUILD": "TRUE",  # compared with == "TRUE"; "1" is ignored
        "MAX_JOBS": str(jobs),
        "NVCC_THREADS": "4" if inp.ram_gb >= 96 else "2",
    }
    if rel.cuda_archs_env:
        res.env["FLASH_ATTN_CUDA_ARCHS"] = cuda_archs(inp.compute_caps)
    else:
        res.notes.append(f"flash-attn {rel.version} ignores FLASH_ATTN_CUDA_ARCHS: it always builds sm80 + sm90")
    if rel.version not in RELEASES_BY_VERSION:
        del res.env["FLASH_ATTENTION_FORCE_BUILD"]  # unknown release: let its setup.py try its own wheel first
    newest_wheel_torch = rel.wheel_torch[-1] if rel.wheel_torch else ""
    if newest_wheel_torch and inp.torch_version and vtuple(minor_of(inp.torch_version)) > vtuple(newest_wheel_torch):
        res.notes.append(
            f"torch {minor_of(inp.torch_version)} is newer than any torch flash-attn {rel.version} "
            f"was released for ({newest_wheel_torch}); the build may fail"
        )
    res.notes.append(f"expect 10 min - 2 h of compiling (MAX_JOBS={jobs}; ninja is installed and checked first)")
    return ""


def cuda_archs(compute_caps: Sequence[Tuple[int, int]]) -> str:
    """FLASH_ATTN_CUDA_ARCHS for these GPUs: sm86/sm89 run the sm80 code."""
    archs = set()
    for major, _minor in compute_caps:
        if major == 8:
            archs.add(80)
        elif major == 9:
            archs.add(90)
        elif major == 10 or major == 11:
            archs.add(100)
        elif major >= 12:
            archs.add(120)
    return ";".join(str(a) for a in sorted(archs)) or "80;90;100;120"


def resolve(
    inp: FAInputs,
    *,
    wanted: bool = True,
    required: bool = False,
    version: str = "auto",
) -> FAResolution:
    """Decide wheel / source build / unsupported / skip for this host and torch."""
    res = FAResolution(kind="unsupported", required=required)
    if not wanted:
        return FAResolution(kind="skip", reason="not wanted by the env spec", required=False)

    def no(reason: str) -> FAResolution:
        res.kind, res.reason = "unsupported", reason + "; experiments use torch SDPA attention"
        return res

    if not inp.compute_caps:
        return no("no NVIDIA GPU with a known compute capability")
    old = [
        (cc, name)
        for cc, name in zip(inp.compute_caps, list(inp.gpu_names) + [""] * len(inp.compute_caps))
        if cc < (8, 0)
    ]
    if old:
        cc, name = old[0]
        arch = "Turing" if cc == (7, 5) else "Volta" if cc[0] == 7 else "pre-Volta"
        if len(old) == len(inp.compute_caps):
            return no(
                f"{name or 'the GPU'} (sm_{cc[0]}{cc[1]}, {arch}) is not supported by flash-attn 2, "
                "which needs Ampere (sm_80) or newer"
            )
        res.notes.append(f"{name} (sm_{cc[0]}{cc[1]}) cannot use flash-attn; only the Ampere+ GPUs can")
    caps = [cc for cc in inp.compute_caps if cc >= (8, 0)]
    if not inp.torch_version:
        return no("torch is not installed in the env")
    if not inp.torch_cuda:
        return no(f"torch {inp.torch_version} is a CPU build (no CUDA)")
    if any(cc[0] >= 10 for cc in caps) and vtuple(inp.torch_cuda) < (12, 8):
        return no(f"Blackwell GPUs need torch built with CUDA >= 12.8 (this torch has CUDA {inp.torch_cuda})")
    abi = inp.cxx11_abi if inp.cxx11_abi is not None else predicted_cxx11_abi(inp.torch_version)
    if inp.cxx11_abi is None:
        res.notes.append(
            f"C++11 ABI {str(abi).upper()} predicted from torch {inp.torch_version} (pip wheels); "
            "the build step re-checks it with the env's torch"
        )
    fa_inp = FAInputs(**{**asdict(inp), "compute_caps": caps})

    if version not in ("", "auto", None):
        rel = RELEASES_BY_VERSION.get(version)
        if rel is None:
            res.notes.append(
                f"flash-attn {version} is not in the built-in release table: its setup.py guesses a "
                "wheel URL itself, else it builds from source"
            )
            rel = Release(
                version=version,
                nvcc_min="11.7",
                python_min="3.9",
                wheel_torch=(),
                wheel_cuda=(),
                wheel_python=("0", "0"),
                wheel_glibc_min="",
                wheel_arches=(),
                blackwell=vtuple(version) >= (2, 8),
                runtime_any_ge_sm80=vtuple(version) >= (2, 7, 3),
                cuda_archs_env=vtuple(version) >= (2, 7, 3),
                torch_min="2.2",
            )
        gpu = _gpu_problem(rel, caps)
        if gpu:
            return no(f"flash-attn {version} (pinned): {gpu}")
        wheel, why = _wheel_problem(rel, fa_inp, abi)
        if wheel:
            res.kind, res.version, res.wheel, res.url = "wheel", rel.version, wheel, wheel_url(rel.version, wheel)
            res.reason = f"flash-attn {rel.version} (pinned) has a release wheel for this torch/CUDA/python/ABI"
            return res
        problem = _source_plan(rel, fa_inp, res)
        if problem:
            return no(f"flash-attn {version} (pinned): no prebuilt wheel ({why}) and no source build: {problem}")
        res.reason = f"flash-attn {version} (pinned) has no prebuilt wheel here ({why}): build from source"
        return res

    # Not pinned: the newest release with a wheel that fits; else build the newest release that can be built.
    why_not: List[str] = []
    for rel in RELEASES:
        if _gpu_problem(rel, caps) or vtuple(fa_inp.python) < vtuple(rel.python_min):
            continue
        wheel, why = _wheel_problem(rel, fa_inp, abi)
        if wheel:
            res.kind, res.version, res.wheel, res.url = "wheel", rel.version, wheel, wheel_url(rel.version, wheel)
            res.reason = "newest flash-attn release with a wheel for this torch/CUDA/python/ABI/glibc"
            if rel is not RELEASES[0]:
                res.reason += f" (newer releases: {why_not[0]})" if why_not else ""
            return res
        why_not.append(f"{rel.version}: {why}")
    first_problem = ""
    base_notes = list(res.notes)
    for rel in RELEASES:
        gpu = _gpu_problem(rel, caps)
        if gpu:
            why_not.append(f"{rel.version}: {gpu}")
            continue
        attempt = FAResolution(kind="unsupported", required=required, notes=list(base_notes))
        problem = _source_plan(rel, fa_inp, attempt)
        if not problem:
            attempt.reason = (
                f"no release wheel fits ({why_not[0] if why_not else 'none'}): "
                f"build flash-attn {rel.version} from source"
            )
            return attempt
        first_problem = first_problem or f"flash-attn {rel.version} cannot be built: {problem}"
    if first_problem:
        return no(f"no release wheel fits ({why_not[0] if why_not else 'none'}) and {first_problem}")
    return no("no flash-attn release supports these GPUs")


# --- build-log diagnoses ----------------------------------------------------------------

_LOG_PATTERNS: Sequence[Tuple[str, str, str]] = (
    (
        r"CondaToSNonInteractiveError|Terms of Service have not been accepted",
        "the Anaconda channels' Terms of Service were not accepted",
        "pass --accept-anaconda-tos (or accept_anaconda_tos: true in the env spec), or use manager: miniforge",
    ),
    (
        r"The detected CUDA version \(([\d.]+)\) mismatches the version that was used to compile"
        r"\s+PyTorch \(([\d.]+)\)",
        "nvcc/torch CUDA mismatch: nvcc {0} vs torch built with CUDA {1}",
        "the nvcc major must equal torch.version.cuda's major; use a matching toolkit or conda cuda-nvcc",
    ),
    (
        r"FlashAttention is only supported on CUDA 11\.\d+ and above",
        "nvcc is too old for flash-attn",
        "install a newer CUDA toolkit (or conda cuda-nvcc)",
    ),
    (
        r"nvcc was not found|CUDA_HOME environment variable is not set|No CUDA runtime is found",
        "nvcc / CUDA_HOME not found",
        "install a CUDA toolkit whose major matches torch, or use a conda env (cuda-nvcc)",
    ),
    (
        r"could not find ninja|Ninja is required|ninja: command not found",
        "ninja is missing: the build falls back to the slow distutils backend",
        "pip install ninja in the env and check `ninja --version` returns 0",
    ),
    (
        r"No module named 'torch'",
        "torch is not visible to the build (pip build isolation)",
        "install torch first and build with --no-build-isolation",
    ),
    (
        r"undefined symbol: _ZN|undefined symbol",
        "undefined symbol at import: the binary was built for another torch version or C++ ABI",
        "match torch major.minor and the cxx11 ABI flag; "
        "reinstall with --no-cache-dir or FLASH_ATTENTION_FORCE_BUILD=TRUE",
    ),
    (
        r"GLIBC_[\d.]+' not found",
        "the prebuilt binary needs a newer glibc than the host has",
        "use a release built on ubuntu-20.04 (<= 2.7.4.post1) or build from source",
    ),
    (
        r"FlashAttention only supports Ampere GPUs or newer|no kernel image is available",
        "this GPU is not supported by this flash-attn build",
        "use torch SDPA (pre-Ampere) or flash-attn >= 2.8 with CUDA >= 12.8 (Blackwell)",
    ),
    (r"No space left on device", "the disk is full", "free space in the workdir (and ~/.cache/pip)"),
    (
        r"Could not find a version that satisfies the requirement|No matching distribution found",
        "pip found no matching package",
        "check the version pins and that the host can reach the package index",
    ),
    (
        r"Temporary failure in name resolution|Failed to establish a new connection"
        r"|Network is unreachable|Could not resolve host",
        "the host cannot reach the internet (downloads fail)",
        "check the host's network/proxy settings",
    ),
    (
        r"sha256 mismatch",
        "the downloaded installer's sha256 does not match",
        "retry; if it persists, check the URL and sha256",
    ),
    (
        r"(^|\s)Killed(\s|$)|killed signal|signal 9|out of memory|Cannot allocate memory|exit code 137|rc=137",
        "the build was killed, most likely out of RAM (OOM killer)",
        "lower MAX_JOBS (about RAM_GB/9) and NVCC_THREADS, or add swap",
    ),
)


# Outside a build (the torch step checks `import torch`), a missing torch is just missing.
_TORCH_MISSING = (
    "torch is not installed in the env's python",
    "install torch into the python the env is made from, or set torch.version: auto in the env spec",
)
_BUILD_STEPS = ("flash-attn", None)


def diagnose_log(text: str, rc: Optional[int] = None, step: Optional[str] = None) -> List[Tuple[str, str]]:
    """Known failure modes found in a step's log -> [(what happened, what to do)].

    ``step``: the bootstrap step whose log this is (None: a flash-attn build log)."""
    found: List[Tuple[str, str]] = []
    for pattern, what, fix in _LOG_PATTERNS:
        if pattern == r"No module named 'torch'" and step not in _BUILD_STEPS:
            what, fix = _TORCH_MISSING
        m = re.search(pattern, text or "", re.MULTILINE)
        if m:
            groups = [g for g in m.groups() if g is not None and not g.isspace()] if m.groups() else []
            try:
                found.append((what.format(*groups), fix))
            except IndexError:
                found.append((what, fix))
    if rc in (137, -9) and not any("killed" in w for w, _ in found):
        found.append(
            (
                "the step was killed (exit 137), most likely out of RAM",
                "lower MAX_JOBS (about RAM_GB/9) and NVCC_THREADS, or add swap",
            )
        )
    return found
