"""Pick the torch build for a host: version + CUDA variant (cuXYZ) + pip index URL.

Pure. Wheels on download.pytorch.org bundle the CUDA runtime, so only the driver
matters: we take the highest CUDA variant that is <= the driver's maximum CUDA version
(`nvidia-smi` "CUDA Version"). Minor-version compatibility would let a newer 12.x build
run on an older 12.x driver, but with a reduced feature set (no PTX JIT), so we do not
rely on it unless the user pins the variant.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from orchestrator.errors import ExitCode, OrchError

INDEX_URL = "https://download.pytorch.org/whl/{variant}"

# CUDA variants published per torch minor version (pytorch RELEASE.md matrix).
TORCH_CUDA_VARIANTS: Dict[str, Tuple[str, ...]] = {
    "2.1": ("cu118", "cu121"),
    "2.2": ("cu118", "cu121"),
    "2.3": ("cu118", "cu121"),
    "2.4": ("cu118", "cu121", "cu124"),
    "2.5": ("cu118", "cu121", "cu124"),
    "2.6": ("cu118", "cu124", "cu126"),
    "2.7": ("cu118", "cu126", "cu128"),
    "2.8": ("cu126", "cu128", "cu129"),
    "2.9": ("cu126", "cu128", "cu130"),
    "2.10": ("cu126", "cu128", "cu130"),
    "2.11": ("cu126", "cu128", "cu130"),
}
LATEST_KNOWN = "2.11"

# Minimum Linux driver for each CUDA major under minor-version compatibility, and the
# GA driver of some toolkits (CUDA release notes, table 3).
DRIVER_FLOOR_MAJOR = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}
DRIVER_FLOOR_GA = {
    "11.8": "520.61.05",
    "12.1": "530.30.02",
    "12.4": "550.54.14",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}


def vtuple(version: str) -> Tuple[int, ...]:
    """'2.11.0+cu130' -> (2, 11, 0); '12.8' -> (12, 8). Non-numeric tails are dropped."""
    base = str(version).split("+")[0]
    out = []
    for part in base.split("."):
        m = re.match(r"^(\d+)", part)
        if not m:
            break
        out.append(int(m.group(1)))
    return tuple(out)


def variant_cuda(variant: str) -> Optional[str]:
    """'cu130' -> '13.0', 'cu118' -> '11.8', 'cpu' -> None."""
    m = re.fullmatch(r"cu(\d+)(\d)", variant)
    if not m:
        return None
    return f"{int(m.group(1))}.{m.group(2)}"


def cuda_variant(cuda: str) -> str:
    """'12.1' -> 'cu121'."""
    major, minor = vtuple(cuda)[:2]
    return f"cu{major}{minor}"


def minor_of(version: str) -> str:
    t = vtuple(version)
    return f"{t[0]}.{t[1]}" if len(t) >= 2 else str(version)


def predicted_cxx11_abi(torch_version: str) -> bool:
    """PyTorch pip wheels use the C++11 ABI from 2.7 on (flash-attn's README: "PyTorch
    2.7+ pip wheels use CXX11_ABI=1"); earlier pip wheels use the old ABI."""
    return vtuple(torch_version)[:2] >= (2, 7)


def split_local(version: str) -> Tuple[str, Optional[str]]:
    """'2.11.0+cu130' -> ('2.11.0', 'cu130'); '2.2.0' -> ('2.2.0', None)."""
    if "+" in version:
        base, local = version.split("+", 1)
        return base, local
    return version, None


@dataclass
class TorchChoice:
    mode: str  # install | preinstalled | none
    version: str = ""  # "2.11" (minor: newest patch) or "2.2.1" (exact), "" when unknown
    variant: str = ""  # cu130 | cpu | "" (preinstalled, unknown)
    reason: str = ""
    notes: List[str] = field(default_factory=list)
    blocked: str = ""  # non-empty: this choice cannot work, and why

    @property
    def cuda(self) -> Optional[str]:
        return variant_cuda(self.variant)

    @property
    def requirement(self) -> str:
        """The pip requirement: 'torch==2.11.*' or 'torch==2.2.1'."""
        if not self.version:
            return "torch"
        if len(vtuple(self.version)) >= 3:
            return f"torch=={self.version}"
        return f"torch=={self.version}.*"

    @property
    def index_url(self) -> str:
        return INDEX_URL.format(variant=self.variant) if self.variant else ""

    def pip_args(self) -> List[str]:
        """Arguments after `python -m pip install`."""
        if self.mode != "install":
            return []
        args = [self.requirement]
        if self.index_url:
            args += ["--index-url", self.index_url]
        return args

    def describe(self) -> str:
        if self.mode == "none":
            return "not installed (env spec says torch: none)"
        if self.mode == "preinstalled":
            return f"preinstalled {self.version or '(any version)'}"
        return f"{self.requirement} ({self.variant})"

    def to_dict(self) -> dict:
        return asdict(self)


def _variants_for(version: str) -> Tuple[Tuple[str, ...], Optional[str]]:
    minor = minor_of(version)
    if minor in TORCH_CUDA_VARIANTS:
        return TORCH_CUDA_VARIANTS[minor], None
    if vtuple(minor) > vtuple(LATEST_KNOWN):
        return (
            TORCH_CUDA_VARIANTS[LATEST_KNOWN],
            f"torch {version} is newer than the built-in table (up to {LATEST_KNOWN}); assuming its CUDA "
            f"variants are those of {LATEST_KNOWN} — pin torch.cuda if that is wrong",
        )
    return (), f"torch {version} is older than the built-in table (from 2.1)"


def gpu_cuda_bounds(
    compute_caps: Sequence[Tuple[int, int]],
) -> Tuple[Tuple[int, ...], Optional[Tuple[int, ...]], List[str]]:
    """The CUDA builds the GPUs themselves need: Blackwell kernels (sm_100/sm_120) ship only
    in cu128+ builds; CUDA 13 dropped Volta and older (sm < 7.5)."""
    min_cuda: Tuple[int, ...] = (0,)
    max_cuda: Optional[Tuple[int, ...]] = None
    why = []
    if any(cc[0] >= 10 for cc in compute_caps):
        min_cuda = (12, 8)
        why.append("Blackwell GPUs need a cu128+ torch build (sm_100/sm_120 kernels)")
    if any(cc < (7, 5) for cc in compute_caps):
        max_cuda = (13, 0)
        why.append("CUDA 13 builds dropped GPUs older than sm_75")
    return min_cuda, max_cuda, why


def select_torch(
    *,
    version: str = "auto",
    cuda: str = "auto",
    driver_cuda: str = "",
    compute_caps: Sequence[Tuple[int, int]] = (),
    has_gpu: bool = True,
    preinstalled_version: str = "",
) -> TorchChoice:
    """Decide the torch build.

    version: "auto" (newest torch with a variant the driver supports), "none", "preinstalled"
        (use what the env already has, e.g. a venv with --system-site-packages), "2.2" or "2.2.1".
    cuda: "auto", "cpu" or a variant such as "cu121".
    driver_cuda: the driver's max CUDA version from nvidia-smi ("13.0"); "" when unknown.
    has_gpu: the jobs' machines have NVIDIA GPUs (probed here, or named by a Slurm cluster's
        sinfo when the login node has no nvidia-smi: then driver_cuda is "").
    """
    version = str(version).strip()
    cuda = str(cuda).strip()
    if version == "none":
        return TorchChoice(mode="none", reason="the env spec asks for no torch")
    if version == "preinstalled":
        base, local = split_local(preinstalled_version) if preinstalled_version else ("", None)
        choice = TorchChoice(
            mode="preinstalled",
            version=base,
            variant=local or "",
            reason="the env spec uses the torch already installed (no download)",
        )
        if not preinstalled_version:
            choice.notes.append("torch is not visible yet; the torch step checks it after the env exists")
        return choice

    if cuda == "cpu" or (cuda == "auto" and not has_gpu):
        v = LATEST_KNOWN if version == "auto" else version
        reason = "CPU build: no usable NVIDIA GPU/driver found" if cuda == "auto" else "CPU build as pinned"
        return TorchChoice(mode="install", version=v, variant="cpu", reason=reason)

    if cuda != "auto" and not re.fullmatch(r"cu\d{3}", cuda):
        return TorchChoice(
            mode="install",
            version=version,
            variant=cuda,
            blocked=f"torch.cuda {cuda!r} is not a variant like cu121, cpu or auto",
        )

    driver_t = vtuple(driver_cuda) if driver_cuda else (99, 9)
    min_cuda, max_cuda, gpu_why = gpu_cuda_bounds(compute_caps)

    if cuda != "auto":  # pinned variant
        v = LATEST_KNOWN if version == "auto" else version
        choice = TorchChoice(mode="install", version=v, variant=cuda, reason=f"{cuda} as pinned")
        variants, note = _variants_for(v)
        if note:
            choice.notes.append(note)
        if variants and cuda not in variants:
            choice.blocked = f"torch {v} has no {cuda} build (it has {', '.join(variants)})"
            return choice
        cu = vtuple(variant_cuda(cuda) or "0")
        if driver_cuda and cu > driver_t:
            if cu[0] > driver_t[0]:
                choice.blocked = (
                    f"{cuda} needs a driver for CUDA {cu[0]}.x (>= {DRIVER_FLOOR_MAJOR.get(cu[0], '?')}); "
                    f"this driver supports CUDA {driver_cuda}"
                )
                return choice
            choice.notes.append(
                f"{cuda} is newer than the driver's CUDA {driver_cuda}: it runs under minor-version "
                "compatibility (no PTX JIT); prefer a variant <= the driver's CUDA"
            )
        if cu < min_cuda or (max_cuda is not None and cu >= max_cuda):
            choice.blocked = f"{cuda} does not fit these GPUs: {'; '.join(gpu_why)}"
        return choice

    # cuda auto: the highest CUDA build <= the driver's CUDA, then the newest torch with it.
    candidates = [version] if version != "auto" else list(TORCH_CUDA_VARIANTS)
    notes: List[str] = []
    pairs = []
    for v in candidates:
        variants, note = _variants_for(v)
        if note:
            notes.append(note)
        for var in variants:
            cu = vtuple(variant_cuda(var) or "0")
            if cu < min_cuda or (max_cuda is not None and cu >= max_cuda):
                continue
            pairs.append((cu, vtuple(v), v, var))
    what = "torch" if version == "auto" else f"torch {version}"
    extra = f" ({'; '.join(gpu_why)})" if gpu_why else ""
    if not driver_cuda and pairs:
        # GPUs without a visible driver: a Slurm login node (the GPUs, from sinfo, are on the
        # compute nodes).  The newest torch's lowest CUDA build that fits the GPUs asks the
        # least of a driver orch cannot see; verify, a Slurm job on a GPU, checks it there.
        newest = max(p[1] for p in pairs)
        cu, _, v, var = min(p for p in pairs if p[1] == newest)
        floor = DRIVER_FLOOR_GA.get(f"{cu[0]}.{cu[1]}", DRIVER_FLOOR_MAJOR.get(cu[0], "?"))
        notes.append(
            f"the GPUs' driver is not visible here (no nvidia-smi): {var}, the lowest CUDA build of torch {v} "
            f"that fits the GPUs, needs driver >= {floor} on the compute nodes; verify checks it on a GPU, "
            "and torch.cuda pins another"
        )
        reason = f"lowest CUDA build of the newest {what} that fits the GPUs; the driver is not visible{extra}"
        return TorchChoice(mode="install", version=v, variant=var, reason=reason, notes=notes)
    exact = [p for p in pairs if p[0] <= driver_t]
    if exact:
        cu, _, v, var = max(exact)
        reason = f"highest CUDA build of {what} <= the driver's CUDA {driver_cuda}{extra}"
        return TorchChoice(mode="install", version=v, variant=var, reason=reason, notes=notes)
    # Minor-version compatibility: same CUDA major, driver above the major's floor.
    compat = [p for p in pairs if p[0][0] == driver_t[0]]
    if compat:
        cu, _, v, var = max(compat, key=lambda p: (-p[0][1], p[1]))  # lowest minor, newest torch
        notes.append(
            f"{var} is newer than the driver's CUDA {driver_cuda}: it runs under CUDA minor-version "
            f"compatibility (driver >= {DRIVER_FLOOR_MAJOR.get(cu[0], '?')}), without PTX JIT; "
            "a driver update is recommended"
        )
        reason = f"no {what} build <= CUDA {driver_cuda}; nearest CUDA {cu[0]}.x build{extra}"
        return TorchChoice(mode="install", version=v, variant=var, reason=reason, notes=notes)
    return TorchChoice(
        mode="install",
        version=version if version != "auto" else "",
        variant="",
        notes=notes,
        blocked=(
            f"no CUDA build of {what} fits the driver's CUDA {driver_cuda}{extra}; "
            "update the NVIDIA driver or pin torch.version / torch.cuda"
        ),
    )


def require_choice(choice: TorchChoice) -> TorchChoice:
    if choice.blocked:
        raise OrchError(choice.blocked, ExitCode.CONFIG)
    return choice
