"""Pick the torch build for a host: version + CUDA variant (cuXYZ) + pip index URL.

Pure. Wheels on download.pytorch.org bundle the CUDA runtime, so only the driver and the
GPUs matter: we take the highest CUDA variant that is <= the driver's maximum CUDA version
(`nvidia-smi` "CUDA Version") among the builds with kernels for every GPU of the host
(BUILD_ARCHS: recent CUDA builds dropped Maxwell, Pascal and, in some releases, Volta), and
refuse, naming the GPU, when there is none. Minor-version compatibility would let a newer 12.x
build run on an older 12.x driver, but with a reduced feature set (no PTX JIT), so we rely on
it only when no build <= the driver's CUDA fits (or the user pins the variant).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

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


# --- which GPUs each build has kernels for ------------------------------------------------
#
# A CUDA build of torch runs only on GPUs it has kernels (SASS) for: a kernel built for
# sm_XY runs on sm_XZ with Z >= Y (same major), never on another major.  Without one, torch
# imports fine and the first kernel fails: "no kernel image is available for execution on
# the device".  The wheels on download.pytorch.org (Linux x86_64) have these
# (TORCH_CUDA_ARCH_LIST in pytorch's .ci/manywheel/build_cuda.sh; torch.cuda.get_arch_list()):
#
#   torch      build          kernels                           source
#   2.1-2.11   cu118 cu121    sm_50 sm_60 sm_70 sm_75 sm_80     pytorch RELEASE.md support matrix ("12.6.3:
#              cu124 cu126    sm_86 sm_90                       Maxwell(5.0) ... Hopper(9.0)"); get_arch_list()
#                                                               of 2.6.0+cu124 (pytorch#144071) and of
#                                                               2.11.0+cu126 (pytorch#182250)
#   2.7        cu128          sm_75 sm_80 sm_86 sm_90 sm_100    pytorch PR #147607 (Mar 2025) dropped sm_50-70
#                             sm_120                            from cu128; EutropicAI/vs-playground#59
#   2.8        cu128 cu129    sm_75 ... sm_120 (conservative)   release notes; see below
#   2.9, 2.10  cu128          sm_70 sm_75 ... sm_120            RELEASE.md "For Release 2.9 and 2.10";
#                                                               get_arch_list() of 2.10.0+cu128 (pytorch#182250)
#   2.11       cu128          sm_75 ... sm_120                  pytorch#172352 and dev-discuss "Dropping Volta
#                                                               support from CUDA-12.8 binaries for release
#                                                               2.11"; get_arch_list() of 2.11.0+cu128
#   2.9-2.11   cu130          sm_75 ... sm_120 (+PTX)           RELEASE.md; CUDA 13 cannot target < sm_75
#
# Conflicts, resolved the conservative way (fewer kernels assumed): torch 2.8's release notes
# say "support for sm50 - sm70 architectures with CUDA 12.8 and 12.9 has been dropped for the
# 2.8.0 release", while its build script and users' get_arch_list() show sm_70 in cu128/cu129
# (pytorch#157517 kept it); we take the release notes.  cu118 wheels also carried sm_37
# (Kepler) in some releases; we count no Kepler kernels anywhere.  PTX (compute_120) is not
# counted: it only serves GPUs newer than any build's kernels.  aarch64 wheels have other lists
# (not modelled: verify runs a kernel on every GPU and catches a misfit there).
Arch = Tuple[int, int]
_SM50_TO_SM90: Tuple[Arch, ...] = ((5, 0), (6, 0), (7, 0), (7, 5), (8, 0), (8, 6), (9, 0))
_SM75_TO_SM120: Tuple[Arch, ...] = ((7, 5), (8, 0), (8, 6), (9, 0), (10, 0), (12, 0))
_SM70_TO_SM120: Tuple[Arch, ...] = ((7, 0),) + _SM75_TO_SM120
BUILD_ARCHS: Dict[str, Tuple[Arch, ...]] = {  # by CUDA variant, unless BUILD_ARCHS_BY_TORCH says otherwise
    "cu118": _SM50_TO_SM90,
    "cu121": _SM50_TO_SM90,
    "cu124": _SM50_TO_SM90,
    "cu126": _SM50_TO_SM90,
    "cu128": _SM75_TO_SM120,
    "cu129": _SM75_TO_SM120,
    "cu130": _SM75_TO_SM120,
}
BUILD_ARCHS_BY_TORCH: Dict[Tuple[str, str], Tuple[Arch, ...]] = {
    ("2.9", "cu128"): _SM70_TO_SM120,
    ("2.10", "cu128"): _SM70_TO_SM120,
}


def build_archs(version: str, variant: str) -> Tuple[Arch, ...]:
    """The GPU architectures torch VERSION's VARIANT build has kernels for; () when unknown
    (a variant not in the table).  A torch newer than the table is taken to be like its
    newest entry, as its variants are."""
    minor = minor_of(version)
    if vtuple(minor) > vtuple(LATEST_KNOWN):
        minor = LATEST_KNOWN
    return BUILD_ARCHS_BY_TORCH.get((minor, variant), BUILD_ARCHS.get(variant, ()))


def runs_on(archs: Sequence[Arch], cc: Arch) -> bool:
    """A kernel for sm_XY runs on a GPU sm_XZ with Z >= Y (CUDA's binary compatibility)."""
    return any(a[0] == cc[0] and a[1] <= cc[1] for a in archs)


def sm(cc: Arch) -> str:
    return f"sm_{cc[0]}{cc[1]}"


def archs_text(archs: Sequence[Arch]) -> str:
    return " ".join(sm(a) for a in archs) or "none known"


def _gpus(compute_caps: Sequence[Arch], gpu_names: Sequence[str]) -> List[Tuple[Arch, str]]:
    """(capability, 'NAME (sm_XY)') once per kind of GPU, oldest first."""
    names = list(gpu_names) + [""] * max(0, len(compute_caps) - len(gpu_names))
    kinds = {(tuple(cc), name) for cc, name in zip(compute_caps, names)}
    return [(cc, f"{name} ({sm(cc)})" if name else sm(cc)) for cc, name in sorted(kinds)]


def _missing(version: str, variant: str, gpus: Sequence[Tuple[Arch, str]]) -> List[str]:
    archs = build_archs(version, variant)
    return [label for cc, label in gpus if not runs_on(archs, cc)]


def _builds_text(pairs: Sequence[Tuple[str, str]]) -> str:
    """[(torch minor, variant)] -> 'torch 2.6-2.11 cu126, torch 2.9-2.10 cu128'."""
    by_variant: Dict[str, List[str]] = {}
    for v, var in pairs:
        by_variant.setdefault(var, []).append(v)
    parts = []
    for var in sorted(by_variant, key=lambda x: vtuple(variant_cuda(x) or "0")):
        vs = sorted(by_variant[var], key=vtuple)
        span = vs[0] if len(vs) == 1 else f"{vs[0]}-{vs[-1]}"
        parts.append(f"torch {span} {var}")
    return ", ".join(parts)


def _no_fit_reason(
    pool: Sequence[Tuple[Tuple[int, ...], str, str]],
    driver_ok,
    gpus: Sequence[Tuple[Arch, str]],
    what: str,
) -> str:
    """Why no build in POOL [(cuda, torch minor, variant)] serves every GPU and the driver:
    a GPU no build has kernels for, a GPU whose builds the driver cannot run, or GPUs that
    no single build serves together (named, with the builds each one runs)."""
    ok = [p for p in pool if driver_ok(p[0])]
    per_gpu = []
    for cc, label in gpus:
        mine = [(v, var) for _, v, var in pool if runs_on(build_archs(v, var), cc)]
        if not mine:
            return (
                f"no {what} build has kernels for {label} (the builds have {_span_of_all(pool)}); "
                "use torch: preinstalled with a torch built for it, or a host with newer GPUs"
            )
        runnable = [(v, var) for cu, v, var in ok if runs_on(build_archs(v, var), cc)]
        if not runnable:
            return f"{label} needs {_builds_text(mine)}, and the driver runs none of them; update the NVIDIA driver"
        per_gpu.append((label, runnable))
    culprits = [
        label
        for cc, label in gpus
        if any(all(runs_on(build_archs(v, var), o) for o, _ in gpus if o != cc) for _, v, var in ok)
    ]
    each = "; ".join(f"{label} runs {_builds_text(b)}" for label, b in per_gpu)
    blame = f" (one would serve the others without {' or without '.join(culprits)})" if culprits else ""
    return (
        f"no single {what} build has kernels for all of these GPUs{blame}: {each}; one env cannot serve "
        "them: use a host (or Slurm partition) whose GPUs one build serves, or torch: preinstalled with a "
        "torch built for all of them"
    )


def _span_of_all(pool: Sequence[Tuple[Tuple[int, ...], str, str]]) -> str:
    archs = sorted({a for _, v, var in pool for a in build_archs(v, var)})
    return f"kernels for {sm(archs[0])} to {sm(archs[-1])}" if archs else "no known kernels"


def select_torch(
    *,
    version: str = "auto",
    cuda: str = "auto",
    driver_cuda: str = "",
    compute_caps: Sequence[Tuple[int, int]] = (),
    gpu_names: Sequence[str] = (),
    has_gpu: bool = True,
    preinstalled_version: str = "",
) -> TorchChoice:
    """Decide the torch build.

    version: "auto" (newest torch with a variant the driver supports), "none", "preinstalled"
        (use what the env already has, e.g. a venv with --system-site-packages), "2.2" or "2.2.1".
    cuda: "auto", "cpu" or a variant such as "cu121".
    driver_cuda: the driver's max CUDA version from nvidia-smi ("13.0"); "" when unknown.
    compute_caps, gpu_names: the GPUs the jobs run on (names in the same order, for messages);
        every one of them must have kernels in the build (BUILD_ARCHS).
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
    gpus = _gpus(compute_caps, gpu_names)
    if cuda != "auto":
        return _pinned_variant(version, cuda, driver_cuda, driver_t, gpus)

    # cuda auto: the highest CUDA build <= the driver's CUDA that has kernels for every GPU,
    # then the newest torch with it.
    candidates = [version] if version != "auto" else list(TORCH_CUDA_VARIANTS)
    notes: List[str] = []
    pool = []  # every build of the candidates: (its CUDA, torch minor, variant)
    for v in candidates:
        variants, note = _variants_for(v)
        if note:
            notes.append(note)
        pool += [(vtuple(variant_cuda(var) or "0"), v, var) for var in variants]
    what = "torch" if version == "auto" else f"torch {version}"

    def pick(builds):
        """(choice tuple, reason) by the driver rules below; None when none fits the driver."""
        pairs = [(cu, vtuple(v), v, var) for cu, v, var in builds]
        if not driver_cuda and pairs:
            # GPUs without a visible driver: a Slurm login node (the GPUs, from sinfo, are on the
            # compute nodes).  The newest torch's lowest CUDA build that fits the GPUs asks the
            # least of a driver orch cannot see; verify, a Slurm job on a GPU, checks it there.
            newest = max(p[1] for p in pairs)
            return min(p for p in pairs if p[1] == newest), "novisible"
        exact = [p for p in pairs if p[0] <= driver_t]
        if exact:
            return max(exact), "exact"
        # Minor-version compatibility: same CUDA major, driver above the major's floor.
        compat = [p for p in pairs if p[0][0] == driver_t[0]]
        if compat:
            return max(compat, key=lambda p: (-p[0][1], p[1])), "compat"  # lowest minor, newest torch
        return None, ""

    fitting = [p for p in pool if not _missing(p[1], p[2], gpus)]
    best, how = pick(fitting)
    if best is None:
        if not pick(pool)[0] or not gpus:
            blocked = (
                f"no CUDA build of {what} fits the driver's CUDA {driver_cuda or '(not visible)'}; "
                "update the NVIDIA driver or pin torch.version / torch.cuda"
            )
        else:
            driver_ok = lambda cu: not driver_cuda or cu <= driver_t or cu[0] == driver_t[0]  # noqa: E731
            blocked = _no_fit_reason(pool, driver_ok, gpus, what)
        return TorchChoice(
            mode="install", version=version if version != "auto" else "", variant="", notes=notes, blocked=blocked
        )
    cu, _, v, var = best
    extra = ""
    plain, _ = pick(pool)  # what the driver alone would get
    if plain is not None and plain[2:] != (v, var):
        missing = _missing(plain[2], plain[3], gpus)
        notes.append(
            f"torch {plain[2]} {plain[3]} has no kernels for {', '.join(missing)} (its kernels: "
            f"{archs_text(build_archs(plain[2], plain[3]))}), so torch {v} {var} instead, which has kernels "
            "for every GPU here"
        )
        extra = f" with kernels for {', '.join(label for _, label in gpus)}"
    if how == "novisible":
        floor = DRIVER_FLOOR_GA.get(f"{cu[0]}.{cu[1]}", DRIVER_FLOOR_MAJOR.get(cu[0], "?"))
        notes.append(
            f"the GPUs' driver is not visible here (no nvidia-smi): {var}, the lowest CUDA build of torch {v} "
            f"that fits the GPUs, needs driver >= {floor} on the compute nodes; verify checks it on a GPU, "
            "and torch.cuda pins another"
        )
        reason = f"lowest CUDA build of the newest {what} that fits the GPUs; the driver is not visible{extra}"
    elif how == "exact":
        reason = f"highest CUDA build of {what} <= the driver's CUDA {driver_cuda}{extra}"
    else:
        notes.append(
            f"{var} is newer than the driver's CUDA {driver_cuda}: it runs under CUDA minor-version "
            f"compatibility (driver >= {DRIVER_FLOOR_MAJOR.get(cu[0], '?')}), without PTX JIT; "
            "a driver update is recommended"
        )
        reason = f"no {what} build <= CUDA {driver_cuda}; nearest CUDA {cu[0]}.x build{extra}"
    return TorchChoice(mode="install", version=v, variant=var, reason=reason, notes=notes)


def _pinned_variant(
    version: str, cuda: str, driver_cuda: str, driver_t: Tuple[int, ...], gpus: Sequence[Tuple[Arch, str]]
) -> TorchChoice:
    """torch.cuda pinned to a variant: check it against the torch version, the driver and the
    GPUs; with torch.version auto, the newest torch whose build of it has kernels for the GPUs."""
    v = LATEST_KNOWN if version == "auto" else version
    notes: List[str] = []
    if version == "auto" and _missing(v, cuda, gpus):
        older = [m for m in TORCH_CUDA_VARIANTS if cuda in TORCH_CUDA_VARIANTS[m] and not _missing(m, cuda, gpus)]
        if older:
            newer = max(older, key=vtuple)
            notes.append(
                f"torch {v} {cuda} has no kernels for {', '.join(_missing(v, cuda, gpus))}, so torch "
                f"{newer} {cuda} instead, the newest torch whose {cuda} build has kernels for every GPU here"
            )
            v = newer
    choice = TorchChoice(mode="install", version=v, variant=cuda, reason=f"{cuda} as pinned", notes=notes)
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
    missing = _missing(v, cuda, gpus)
    if missing:
        others = [var for var in variants if not _missing(v, var, gpus)]
        fix = f"; torch {v}'s {' or '.join(others)} build has them" if others else ""
        choice.blocked = (
            f"torch {v} {cuda} has no kernels for {', '.join(missing)} "
            f"(its kernels: {archs_text(build_archs(v, cuda))}){fix}"
        )
    return choice
