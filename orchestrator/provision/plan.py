"""Host facts + env spec -> the ordered bootstrap steps, each done / todo / blocked / skip, why,
and the exact command. Pure: no I/O; orchestrator/provision/bootstrap.py runs what this decides.

Steps, in order (each depends on the ones before it):

    conda       install Miniconda/Miniforge into the workdir (or reuse a usable conda)
    env         create the env (conda create -p / python -m venv) at <workdir>/envs/<name>
    torch       pip install torch for the driver's CUDA (or check a preinstalled one)
    packages    pip install the spec's packages
    flash-attn  prebuilt wheel or source build (or skipped, with the reason)
    verify      bootstrap/verify.py with the env's python -> verify.json

Idempotence: every step has a fingerprint of the inputs that define its result, chained
to the steps it builds on (a new python version redoes everything after it; a new package
list does not rebuild flash-attn). The host records each finished step's fingerprint and
exit code; a step is done when the recorded fingerprint matches and it succeeded.

Each step has its own function (`plan_conda` ... `plan_verify`) taking the `Inputs` and the
earlier steps it builds on; `build_plan` composes them, then blocks what cannot run yet.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from orchestrator import backends
from orchestrator.backends.base import JobBackend
from orchestrator.config.envspec import EnvSpec
from orchestrator.contract.bootsteps import Layout, Step
from orchestrator.provision import flashattn
from orchestrator.provision.gpu import ClusterGpus, caps_from_types
from orchestrator.provision.probe import CondaInstall, HostFacts, PythonInfo
from orchestrator.provision.torch_select import (
    TorchChoice,
    archs_text,
    build_archs,
    runs_on,
    select_torch,
    split_local,
    variant_cuda,
)

STEPS = ("conda", "env", "torch", "packages", "flash-attn-fetch", "flash-attn", "verify")
STATES = ("done", "todo", "running", "blocked", "skip")
SCRIPTS = ("run_step.sh", "install_conda.sh", "make_env.sh", "build_flash_attn.sh", "verify.py")

MINICONDA_URL = "https://repo.anaconda.com/miniconda/Miniconda3-latest-Linux-{arch}.sh"
MINIFORGE_URL = "https://github.com/conda-forge/miniforge/releases/latest/download/Miniforge3-Linux-{arch}.sh"
TOS_MESSAGE = (
    "Miniconda's default channels (repo.anaconda.com/pkgs/main and /pkgs/r) require accepting the Anaconda "
    "Terms of Service (enforced since 2025: CondaToSNonInteractiveError)"
)
TOS_HINT = (
    "accept them with `orch bootstrap HOST --accept-anaconda-tos` or `accept_anaconda_tos: true` in the "
    "env spec, or use `manager: miniforge` (conda-forge only, no ToS)"
)
GPU_ERRORS = ("no_driver", "mismatch", "no_devices", "no_permission", "failed")


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Plan:
    host: str
    spec: EnvSpec
    facts: HostFacts
    layout: Layout
    torch: TorchChoice
    flash_attn: flashattn.FAResolution
    conda: Optional[CondaInstall]  # the conda used (existing or to be installed)
    steps: List[Step]
    host_python: str = ""  # the host config's python now
    warnings: List[str] = field(default_factory=list)
    # The host's job backend: some detached steps may run as its batch jobs (runs_as_job)
    backend: JobBackend = field(default_factory=backends.default)

    @property
    def env_python(self) -> str:
        return self.layout.env_python

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    @property
    def pending(self) -> List[Step]:
        return [s for s in self.steps if s.state in ("todo", "running", "blocked")]

    @property
    def blocked(self) -> Optional[Step]:
        return next((s for s in self.steps if s.state == "blocked"), None)

    @property
    def host_config_done(self) -> bool:
        return self.host_python == self.layout.env_python

    @property
    def nothing_to_do(self) -> bool:
        return not self.pending

    def to_dict(self) -> dict:
        return {
            "host": self.host,
            "env": self.spec.name,
            "env_python": self.env_python,
            "torch": self.torch.to_dict(),
            "flash_attn": self.flash_attn.to_dict(),
            "conda": self.conda.prefix if self.conda else None,
            "steps": [s.to_dict() for s in self.steps],
            "warnings": list(self.warnings),
        }


# --- helpers --------------------------------------------------------------------------------


def _record(facts: HostFacts, step: str) -> Optional[dict]:
    """The newest record of a step: the host-written result file, else state.json."""
    rec = facts.results.get(step)
    if rec is None:
        steps = facts.state.get("steps")
        rec = steps.get(step) if isinstance(steps, dict) else None  # state.json is the host's
    return rec if isinstance(rec, dict) else None


def _env_info(facts: HostFacts, path: str) -> Optional[PythonInfo]:
    info = facts.envs.get(path)
    if info is None or info.missing or info.broken or not info.version:
        return None
    return info


def _base_python(facts: HostFacts, request: str) -> Tuple[Optional[PythonInfo], str]:
    """The host python a venv is made from: (info, '') or (None, why not)."""
    usable = [p for p in facts.pythons if p.version and not p.broken]
    if request == "system":
        chosen = next((p for p in usable if p.name == "python3"), usable[0] if usable else None)
        if chosen is None:
            return None, "no python3 on the host's PATH"
    else:
        chosen = next((p for p in usable if p.minor == request and p.venv), None) or next(
            (p for p in usable if p.minor == request), None
        )
        if chosen is None:
            have = ", ".join(sorted({p.minor for p in usable})) or "none"
            return None, f"no python {request} on the host (found: {have}); install it, or use manager: conda"
    if not chosen.venv:
        return None, (
            f"{chosen.path} ({chosen.version}) cannot create venvs (no venv/ensurepip module; "
            f"Debian/Ubuntu: apt-get install python{chosen.minor}-venv)"
        )
    return chosen, ""


def _pick_conda(facts: HostFacts, spec: EnvSpec, layout: Layout) -> Tuple[Optional[CondaInstall], str]:
    """(conda found on the host to use, its prefix) — None when it must be installed at prefix."""
    prefix = spec.conda.prefix or layout.conda_prefix(spec.manager)
    for c in facts.conda:
        if c.prefix.rstrip("/") == prefix.rstrip("/"):
            return c, prefix
    # a custom prefix the probe does not scan: its base python is in facts.envs
    if spec.conda.prefix and _env_info(facts, posixpath.join(prefix, "bin", "python")):
        return CondaInstall(prefix=prefix), prefix
    if spec.conda.use_existing and not spec.conda.prefix:
        usable = [c for c in facts.conda if c.usable]
        if spec.manager == "miniforge":
            usable.sort(key=lambda c: not c.conda_forge)
        if usable:
            return usable[0], usable[0].prefix
    return None, prefix


def torch_facts(
    plan_torch: TorchChoice, env: Optional[PythonInfo], base: Optional[PythonInfo], spec: EnvSpec
) -> Tuple[str, Optional[str], bool]:
    """(torch version, its CUDA or None, installed?) — installed facts win over the choice."""
    source = env
    if source is None and spec.torch.version == "preinstalled" and spec.system_site_packages:
        source = base  # a --system-site-packages venv will see the base python's torch
    installed = (source.packages.get("torch") if source else None) or ""
    if installed:
        base_v, local = split_local(installed)
        cuda = source.torch_cuda if source and source.torch_cuda else variant_cuda(local or "")
        if cuda is None and local is None and plan_torch.mode == "install":
            cuda = plan_torch.cuda
        return base_v, cuda, True
    if plan_torch.mode == "install" and not plan_torch.blocked:
        return plan_torch.version, plan_torch.cuda, False
    return "", None, False


def default_installer_url(spec: EnvSpec, arch: str) -> str:
    template = MINIFORGE_URL if spec.manager == "miniforge" else MINICONDA_URL
    return template.format(arch=arch or "x86_64")


# --- one function per step --------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """What every step is planned from: the probed host, the env spec, and the user's flags."""

    facts: HostFacts
    spec: EnvSpec
    layout: Layout
    force: Tuple[str, ...] = ()
    accepted: bool = False  # the Anaconda ToS, by --accept-anaconda-tos or in the spec
    # The host's job backend: where its jobs' GPUs are (``cluster_gpus``), which steps run as
    # its batch jobs (``runs_as_job``).
    backend: JobBackend = field(default_factory=backends.default)

    @property
    def env_info(self) -> Optional[PythonInfo]:
        """The env's python as probed; None when it is missing or broken."""
        return _env_info(self.facts, self.layout.env_python)

    @property
    def install_s(self) -> float:
        return self.spec.timeouts.install * 60

    @property
    def caps(self) -> List[Tuple[int, int]]:
        gpu = self.facts.gpu
        if gpu.ok:
            return gpu.compute_caps()
        return self.cluster_gpus.caps

    @property
    def gpu_names(self) -> List[str]:
        gpu = self.facts.gpu
        if gpu.ok:
            return [g.name for g in gpu.gpus if g.cc_tuple is not None]
        return self.cluster_gpus.names

    @property
    def cluster_gpus(self) -> ClusterGpus:
        """A login node without nvidia-smi (the GPUs are on the compute nodes): the GPU types
        the host's scheduler names for its jobs (Slurm: the gres of the host's partitions)."""
        if self.facts.gpu.diagnosis.kind != "missing":
            return ClusterGpus()
        return caps_from_types(self.backend.cluster_gpus(self.facts.cluster))

    def judge(self, step: Step, exists: bool, extra_ok: bool = True, missing_why: str = "") -> None:
        """done / todo from the recorded fingerprint; running when its tmux session is alive."""
        rec = _record(self.facts, step.name)
        session = self.layout.session(step.name)
        if session in self.facts.tmux_sessions:
            step.state, step.why = "running", f"running on the host (tmux session {session})"
            return
        # Live as a scheduler's batch job (Slurm: squeue lists it), whichever scheduler the
        # host names now: starting it again would run it twice.
        for backend in backends.every():
            why = backend.running_step(self.facts.cluster, session)
            if why:
                step.state, step.why = "running", why
                return
        if step.name in self.force:
            step.state, step.why = "todo", "forced (--force)"
            return
        if rec is None or "rc" not in rec:
            step.state, step.why = "todo", "not done yet"
        elif rec.get("fingerprint") != step.fingerprint:
            step.state, step.why = (
                "todo",
                "its inputs changed since it last ran" if rec.get("rc") == 0 else "failed last time with other inputs",
            )
        elif rec.get("rc") != 0:
            step.state, step.why = "todo", f"failed last time (exit {rec.get('rc')}): resuming here"
        elif not exists:
            step.state, step.why = "todo", missing_why or "its result is missing on the host"
        elif not extra_ok:
            step.state, step.why = "todo", missing_why
        else:
            step.state, step.why = "done", "up to date"


class CondaOutcome(NamedTuple):
    step: Step
    install: Optional[CondaInstall]  # the conda the env is made with: found, or the one to install
    exe: str  # its conda executable ("" for a venv)
    tos_blocks_env: bool  # a found conda whose default channels need the Anaconda ToS, not accepted


def plan_conda(inp: Inputs) -> CondaOutcome:
    facts, spec, layout, force = inp.facts, inp.spec, inp.layout, inp.force
    step = Step("conda", "conda")
    if not spec.uses_conda:
        step.state, step.why = "skip", "venv manager: no conda needed"
        return CondaOutcome(step, None, "", False)
    found, prefix = _pick_conda(facts, spec, layout)
    flavor = "miniforge" if spec.manager == "miniforge" else "miniconda"
    exe = posixpath.join(prefix, "bin", "conda")
    url = spec.conda.installer_url or default_installer_url(spec, facts.arch)
    step.title = f"install {'Miniforge' if flavor == 'miniforge' else 'Miniconda'} -> {prefix}"
    step.argv = [
        "bash",
        layout.script("install_conda.sh"),
        "--flavor",
        flavor,
        "--prefix",
        prefix,
        "--url",
        url,
        "--download-dir",
        layout.downloads,
    ]
    if spec.conda.installer_sha256:
        step.argv += ["--sha256", spec.conda.installer_sha256]
    step.fingerprint = fingerprint("conda", flavor, prefix, url, spec.conda.installer_sha256)
    step.detached, step.timeout_s = True, inp.install_s
    rec = _record(facts, "conda")
    failed_here = bool(rec and rec.get("fingerprint") == step.fingerprint and rec.get("rc") not in (0, None))
    ours = (
        found is not None
        and found.prefix.rstrip("/") == prefix.rstrip("/")
        and (bool(rec) or prefix.startswith(facts.workdir.rstrip("/") + "/"))
    )
    if found is not None and not failed_here and "conda" not in force:
        conda = found
        step.title = f"conda at {found.prefix}"
        step.state = "done"
        step.why = (
            "installed" if ours else f"using the existing conda at {found.prefix} ({found.version or 'version ?'})"
        )
    elif found is not None and "conda" in force and not ours:
        conda = found
        step.state = "blocked"
        step.why = f"the conda at {found.prefix} was not installed by orch: --force conda would modify it"
        step.hint = "set conda.use_existing: false in the env spec to install orch's own"
    else:
        conda = CondaInstall(prefix=prefix, conda_forge=flavor == "miniforge")
        inp.judge(step, exists=found is not None, missing_why=f"no conda at {prefix}")
        if step.state == "todo" and not failed_here and "conda" not in force:
            step.why = (
                "no usable conda on the host"
                if not facts.conda or not spec.conda.use_existing
                else f"no conda at {prefix}"
            )
        if not url.startswith("file://") and not (facts.has("curl") or facts.has("wget")):
            step.state, step.why = "blocked", "neither curl nor wget on the host to download the installer"
            step.blocked_code = "host"
    tos_blocks_env = False
    if spec.manager == "conda" and not inp.accepted:
        if step.state == "todo":
            step.state, step.why, step.hint = "blocked", TOS_MESSAGE, TOS_HINT
        elif conda.tos_plugin and not conda.conda_forge:
            tos_blocks_env = True
    if spec.manager == "conda" and inp.accepted:
        step.notes.append("Anaconda ToS accepted by the user (recorded with `conda tos accept`)")
    return CondaOutcome(step, conda, exe, tos_blocks_env)


def plan_env(inp: Inputs, conda: CondaOutcome, base: Optional[PythonInfo], base_why: str) -> Step:
    """`base`/`base_why`: the host python a venv is made from, or why there is none (venv only)."""
    spec, layout, env_info = inp.spec, inp.layout, inp.env_info
    step = Step("env", f"{spec.manager} env {spec.name} -> {layout.env_prefix}")
    if spec.manager == "venv":
        py_arg = base.path if base else spec.python
        step.argv = [
            "bash",
            layout.script("make_env.sh"),
            "--manager",
            "venv",
            "--prefix",
            layout.env_prefix,
            "--python",
            py_arg,
        ]
        if spec.system_site_packages:
            step.argv.append("--system-site-packages")
        step.fingerprint = fingerprint(
            "env", "venv", spec.python, base.minor if base else "", spec.system_site_packages, layout.env_prefix
        )
    else:
        step.argv = [
            "bash",
            layout.script("make_env.sh"),
            "--manager",
            spec.manager,
            "--prefix",
            layout.env_prefix,
            "--python",
            spec.python,
            "--conda",
            conda.exe,
        ]
        if spec.manager == "conda" and inp.accepted:
            step.argv.append("--accept-tos")
        step.fingerprint = fingerprint(
            "env", spec.manager, spec.python, conda.install.prefix if conda.install else "", layout.env_prefix
        )
    inp.judge(step, exists=env_info is not None, missing_why=f"the env is missing at {layout.env_prefix}")
    if step.state == "todo" and env_info is not None:
        step.argv.append("--recreate")  # an env from another spec: rebuild it
        step.notes.append("the existing env is removed and created again")
    if base_why and step.state != "done":
        step.state, step.why, step.blocked_code = "blocked", base_why, "host"
    if conda.tos_blocks_env and step.state != "done":
        step.state, step.why, step.hint = "blocked", TOS_MESSAGE + f" (conda at {conda.install.prefix})", TOS_HINT
    step.timeout_s = inp.install_s
    step.detached = spec.uses_conda  # conda create downloads; venv creation takes seconds
    return step


def torch_choice(inp: Inputs, base: Optional[PythonInfo]) -> TorchChoice:
    """Which torch the env gets, from the spec, the driver and the GPUs (or the one it has)."""
    spec, gpu, env_info = inp.spec, inp.facts.gpu, inp.env_info
    preinstalled = ""
    if spec.torch.version == "preinstalled":
        src = env_info or (base if spec.system_site_packages else None)
        preinstalled = (src.packages.get("torch") or "") if src else ""
    # A login node without nvidia-smi: the GPUs its scheduler names are the jobs' GPUs
    # (driver unseen), whether or not orch knows their type's compute capability.
    cluster_gpus = inp.cluster_gpus
    choice = select_torch(
        version=spec.torch.version,
        cuda=spec.torch.cuda,
        driver_cuda=gpu.cuda_version,
        compute_caps=inp.caps,
        gpu_names=inp.gpu_names,
        has_gpu=gpu.ok or cluster_gpus.present,
        preinstalled_version=preinstalled,
    )
    if cluster_gpus.unknown and spec.torch.cuda == "auto" and choice.mode == "install" and choice.cuda:
        kinds = ", ".join(repr(k) if k else f"untyped {cluster_gpus.untyped}" for k in cluster_gpus.unknown)
        archs = build_archs(choice.version, choice.variant)
        lacks = [
            name
            for name, cc in (("Pascal", (6, 0)), ("Volta", (7, 0)), ("Blackwell", (10, 0)))
            if not runs_on(archs, cc)
        ]
        choice.notes.append(
            f"{cluster_gpus.source}'s GPUs ({kinds}) have no known compute capability: "
            f"{choice.variant} is assumed to fit them "
            f"(torch {choice.version} {choice.variant} has kernels for {archs_text(archs)} only"
            + (f": no {', no '.join(lacks)}" if lacks else "")
            + "); verify runs a kernel on each GPU, and torch.cuda in the env spec pins another build"
        )
    return choice


def plan_torch(inp: Inputs, choice: TorchChoice, env_step: Step, base: Optional[PythonInfo]) -> Step:
    facts, spec, gpu, env_info = inp.facts, inp.spec, inp.facts.gpu, inp.env_info
    env_py = inp.layout.env_python
    step = Step("torch", f"torch {choice.describe()}")
    # Which instance of the env the later steps were installed into: recreating the env (a new
    # spec, --force env, deleted by hand) empties it, so everything after it is redone.
    env_rec = _record(facts, "env") if env_step.state == "done" else None
    env_instance = (env_rec or {}).get("started", "new")
    step.fingerprint = fingerprint(
        "torch", env_step.fingerprint, env_instance, choice.mode, choice.requirement, choice.index_url
    )
    step.notes.extend(choice.notes)
    if choice.reason:
        step.notes.insert(0, choice.reason)
    installed_torch = (env_info.packages.get("torch") if env_info else None) or ""
    if choice.mode == "none":
        step.state, step.why = "skip", "the env spec asks for no torch"
    elif choice.mode == "preinstalled":
        step.argv = [env_py, "-c", 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)']
        inp.judge(step, exists=bool(installed_torch), missing_why="torch is not importable in the env")
        # The probe looked at the python that is to provide torch: without it no later step can work.
        sees_base = base is not None and spec.system_site_packages
        if env_info is not None:
            source, where = (
                env_info,
                f"the env's python ({env_py})" + (f", which sees the packages of {base.path}" if sees_base else ""),
            )
        elif sees_base and base.prefix == (base.base_prefix or base.prefix):
            # (a venv made from a venv's python sees its *base* interpreter's packages, which
            # the probe did not look at: only a base interpreter is judged before the env exists)
            source, where = base, f"{base.path} (the python the venv is made from)"
        else:
            source, where = None, ""
        if source is not None and not source.packages.get("torch") and step.state != "done":
            step.state = "blocked"
            step.why = f"torch is missing from {where}, and torch: preinstalled installs none"
            step.hint = (
                f"install torch into {base.path if sees_base else env_py}, or set torch.version: auto "
                "in the env spec so bootstrap installs the build for the host's driver"
            )
            step.blocked_code = "host"
    else:
        step.argv = [env_py, "-m", "pip", "install", *choice.pip_args()]
        if "torch" in inp.force:
            step.argv.append("--force-reinstall")
        step.detached, step.timeout_s = True, inp.install_s
        inp.judge(step, exists=bool(installed_torch), missing_why="torch is missing from the env")
    if choice.blocked and step.state != "done":
        step.state, step.why = "blocked", choice.blocked
        step.blocked_code = "host" if spec.torch.version == spec.torch.cuda == "auto" else "config"
    gpu_broken = gpu.diagnosis.kind in GPU_ERRORS
    if gpu_broken and spec.torch.cuda == "auto" and choice.mode == "install" and step.state != "done":
        step.state, step.why = "blocked", f"GPU problem: {gpu.diagnosis.message}"
        step.hint = gpu.diagnosis.hint or "fix the driver, or pin torch.cuda: cpu"
        step.blocked_code = "host"
    return step


def plan_packages(inp: Inputs, torch_step: Step) -> Step:
    spec = inp.spec
    step = Step("packages", f"pip packages ({len(spec.packages)})")
    step.fingerprint = fingerprint("packages", torch_step.fingerprint, sorted(spec.packages))
    if not spec.packages:
        step.state, step.why = "skip", "no packages in the env spec"
        return step
    step.title = "pip " + " ".join(spec.packages)
    step.argv = [inp.layout.env_python, "-m", "pip", "install", *spec.packages]
    if "packages" in inp.force:
        step.argv += ["--force-reinstall", "--no-deps"]
    step.detached, step.timeout_s = True, inp.install_s
    inp.judge(step, exists=inp.env_info is not None)
    return step


def flash_attn_choice(
    inp: Inputs, torch_version: str, torch_cuda: Optional[str], base: Optional[PythonInfo]
) -> flashattn.FAResolution:
    """A wheel, a source build, or skipped, for the torch the env has (or is about to get)."""
    facts, spec, gpu, env_info = inp.facts, inp.spec, inp.facts.gpu, inp.env_info
    py_minor = env_info.minor if env_info else (base.minor if base else spec.python)
    fa_inp = flashattn.FAInputs(
        compute_caps=inp.caps,
        gpu_names=inp.gpu_names,
        driver_cuda=gpu.cuda_version,
        torch_version=torch_version,
        torch_cuda=torch_cuda,
        python=py_minor,
        glibc=facts.glibc,
        arch=facts.arch or "x86_64",
        nvcc_version=facts.nvcc_version,
        nvcc_path=facts.nvcc_path,
        conda_available=spec.uses_conda,
        ram_gb=facts.mem_available_gb,
        cpus=facts.cpus or 1,
        ninja=facts.has("ninja"),
    )
    return flashattn.resolve(
        fa_inp, wanted=spec.flash_attn.wanted, required=spec.flash_attn.required, version=spec.flash_attn.version
    )


def plan_flash_attn(
    inp: Inputs, fa: flashattn.FAResolution, torch_step: Step, conda_exe: str, torch_installed: bool
) -> Step:
    spec, layout, env_info = inp.spec, inp.layout, inp.env_info
    step = Step("flash-attn", "flash-attn")
    step.notes.extend(fa.notes)
    if fa.kind == "skip":
        step.state, step.why = "skip", fa.reason
        return step
    if fa.kind == "unsupported":
        if spec.flash_attn.required:
            step.state, step.why = "blocked", fa.reason
            step.hint = "flash_attn.required is true in the env spec; set it to false to continue without"
            step.blocked_code = "host"
        else:
            step.state, step.why = "skip", fa.reason
        return step
    step.title = f"flash-attn {fa.describe()}"
    argv = ["bash", layout.script("build_flash_attn.sh"), "--python", layout.env_python, "--version", fa.version]
    if fa.kind == "wheel":
        argv += ["--wheel-url", fa.url, "--wheel", fa.wheel]
        step.timeout_s = inp.install_s
    else:
        argv.append("--source")
        if fa.conda_cuda_version:
            argv += ["--conda", conda_exe, "--conda-cuda", fa.conda_cuda_version]
        elif fa.cuda_home:
            argv += ["--cuda-home", fa.cuda_home]
        step.env = dict(fa.env)
        step.timeout_s = spec.timeouts.flash_attn_build * 60
    step.argv = argv
    step.detached = True
    step.fingerprint = fingerprint(
        "flash-attn",
        torch_step.fingerprint,
        fa.kind,
        fa.version,
        fa.wheel,
        fa.env.get("FLASH_ATTN_CUDA_ARCHS", ""),
        fa.conda_cuda_version,
    )
    have = (env_info.packages.get("flash-attn") if env_info else None) or ""
    inp.judge(
        step,
        exists=bool(have),
        extra_ok=have.split("+")[0] == fa.version.split("+")[0],
        missing_why=f"flash-attn {fa.version} is not installed in the env (found {have or 'none'})",
    )
    if fa.kind == "source" and not inp.facts.has("gcc") and step.state != "done":
        step.state, step.why = "blocked", "a source build needs gcc/g++ on the host (apt-get install build-essential)"
        step.blocked_code = "host"
    if not torch_installed and step.state == "todo":
        step.notes.append("planned from the torch about to be installed; re-planned from the real one before it runs")
    return step


def plan_flash_attn_fetch(inp: Inputs, fa_step: Step) -> Optional[Step]:
    """Where the host's backend runs a flash-attn source build as a batch job (Slurm: on a
    compute node, which often has no internet), this step, on the login node, does the
    build's downloads first (build tools and conda's nvcc into the env on the shared
    filesystem, flash-attn's sdist into the wheelhouse), and the build then installs from
    there with --no-index."""
    if not inp.backend.runs_as_job(fa_step) or fa_step.state == "skip":
        return None
    step = Step("flash-attn-fetch", "flash-attn: build tools and sources, fetched on the login node")
    house = posixpath.join(inp.layout.wheelhouse, "flash-attn")
    step.argv = [*fa_step.argv, "--fetch-only", house]
    step.env = dict(fa_step.env)
    step.detached = True  # downloads: minutes (conda's nvcc: a GiB)
    step.timeout_s = inp.install_s
    step.fingerprint = fingerprint("flash-attn-fetch", fa_step.fingerprint)
    fa_step.argv += ["--wheelhouse", house]
    if fa_step.state == "done":
        step.state, step.why = "skip", "flash-attn is installed"
        return step
    inp.judge(step, exists=True)
    if fa_step.state == "blocked" and step.state != "done":
        step.state, step.why, step.blocked_code, step.hint = "blocked", fa_step.why, fa_step.blocked_code, fa_step.hint
    return step


def cpu_torch_fix(spec: EnvSpec, host: str) -> str:
    """What makes a host's GPUs usable when env SPEC's torch is a CPU build: for a torch orch
    does not install (preinstalled) bootstrapping it again changes nothing."""
    if spec.torch.version == "preinstalled":
        return (
            f"env {spec.name} uses the host's preinstalled torch, a CPU build: `orch bootstrap {host} --env default` "
            "installs an env with a CUDA torch (then jobs use it), or install a CUDA torch where that torch is; "
            "torch.cuda: cpu in the env spec accepts the CPU"
        )
    return f"`orch bootstrap {host} --force torch` installs the CUDA build; torch.cuda: cpu in the env spec accepts it"


def plan_verify(
    inp: Inputs,
    choice: TorchChoice,
    torch_cuda: Optional[str],
    fa: flashattn.FAResolution,
    built_on: Sequence[Step],
    verify_digest: str,
) -> Step:
    """`built_on`: the torch, packages and flash-attn steps, whose results it checks."""
    layout, facts = inp.layout, inp.facts
    torch_step, pkg_step, fa_step = built_on
    step = Step("verify", "verify: torch, a kernel on every GPU, bf16 matmul, SDPA flash vs math, flash-attn vs SDPA")
    step.argv = [layout.env_python, layout.script("verify.py"), "--out", layout.verify_json]
    if fa.installs:
        step.argv.append("--expect-flash-attn")
    # GPUs seen here, or named by the scheduler of a login node (verify then runs as a job on one):
    # torch must use them - a CPU build too (a preinstalled one), unless the spec pins the CPU.
    has_gpus = facts.gpu.ok or inp.cluster_gpus.present
    if has_gpus and choice.mode != "none" and (torch_cuda is not None or inp.spec.torch.cuda != "cpu"):
        step.argv.append("--expect-cuda")
    if choice.mode == "none":
        step.argv.append("--no-torch-ok")
    step.fingerprint = fingerprint(
        "verify",
        torch_step.fingerprint,
        pkg_step.fingerprint,
        fa_step.fingerprint or fa.kind,
        verify_digest,
        step.argv[3:],
    )
    step.timeout_s = 600
    verify_ok = bool(facts.verify and facts.verify.get("ok"))
    env_exists = inp.env_info is not None
    inp.judge(
        step,
        exists=env_exists,
        extra_ok=verify_ok,
        missing_why="the last verification did not pass" if env_exists else "the env is missing",
    )
    if inp.force and "verify" not in inp.force and step.state == "done":
        step.state, step.why = "todo", "re-verify after the forced step"
    return step


def _block_without_tmux(steps: Sequence[Step], facts: HostFacts, backend: JobBackend) -> None:
    """The first detached step to run is blocked on a host without tmux; the steps the host's
    backend runs as batch jobs (Slurm: verify, a flash-attn source build) need none."""
    if facts.has("tmux"):
        return
    for s in steps:
        if backend.runs_as_job(s):
            continue
        if s.detached and s.state in ("todo", "running"):
            s.state, s.why = "blocked", "tmux is missing on the host (long steps run detached in tmux)"
            s.hint = "install tmux on the host (apt-get install tmux)"
            s.blocked_code = "host"
            return


def _block_after_blocker(steps: Sequence[Step]) -> None:
    """A step after a blocked one cannot run: show it as waiting for the blocker."""
    blocker: Optional[Step] = None
    for s in steps:
        if blocker is not None and s.state in ("todo", "running"):
            s.state, s.why, s.blocked_code = "blocked", f"needs {blocker.name} (blocked)", blocker.blocked_code
        elif s.state == "blocked" and blocker is None:
            blocker = s


# --- the plan --------------------------------------------------------------------------------


def build_plan(
    facts: HostFacts,
    spec: EnvSpec,
    *,
    host: str,
    host_python: str = "",
    force: Sequence[str] = (),
    accept_tos: bool = False,
    verify_digest: str = "",
    backend: Optional[JobBackend] = None,
) -> Plan:
    """BACKEND: the host's job backend, with the host's options (None: a host config's default one)."""
    backend = backend if backend is not None else backends.default()
    inp = Inputs(
        facts,
        spec,
        Layout(facts.workdir, spec.name),
        tuple(force),
        accepted=accept_tos or spec.accept_anaconda_tos,
        backend=backend,
    )
    base, base_why = _base_python(facts, spec.python) if spec.manager == "venv" else (None, "")
    conda = plan_conda(inp)
    env_step = plan_env(inp, conda, base, base_why)
    choice = torch_choice(inp, base)
    torch_step = plan_torch(inp, choice, env_step, base)
    pkg_step = plan_packages(inp, torch_step)
    torch_version, torch_cuda, torch_installed = torch_facts(choice, inp.env_info, base, spec)
    fa = flash_attn_choice(inp, torch_version, torch_cuda, base)
    fa_step = plan_flash_attn(inp, fa, torch_step, conda.exe, torch_installed)
    fetch_step = plan_flash_attn_fetch(inp, fa_step)
    verify_step = plan_verify(inp, choice, torch_cuda, fa, (torch_step, pkg_step, fa_step), verify_digest)

    steps = [conda.step, env_step, torch_step, pkg_step, *([fetch_step] if fetch_step else []), fa_step, verify_step]
    _block_without_tmux(steps, facts, backend)
    _block_after_blocker(steps)
    warnings: List[str] = []
    cluster_gpus = inp.cluster_gpus
    if cluster_gpus.present:
        kinds = [f"{n} sm_{c[0]}{c[1]}" for c, n in zip(cluster_gpus.caps, cluster_gpus.names)]
        kinds += [f"{k} sm_?" if k else "untyped sm_?" for k in cluster_gpus.unknown]
        warnings.append(f"no nvidia-smi on this login node: GPU types from {cluster_gpus.source} ({', '.join(kinds)})")
    warnings += [f"{note}: flash-attn cannot target it" for note in cluster_gpus.notes]
    if "--expect-cuda" in verify_step.argv and torch_cuda is None and torch_version:
        verify_step.hint = verify_step.hint or cpu_torch_fix(spec, host)  # said when verify fails
        warnings.append(
            f"torch {torch_version} of env {spec.name} is a CPU build (no CUDA) but this host has GPUs: "
            f"verify fails until torch can use them ({verify_step.hint})"
        )
    if facts.disk_path and facts.disk_free_gb < 15 and any(s.state == "todo" for s in steps):
        warnings.append(f"only {facts.disk_free_gb:.0f} GiB free at {facts.disk_path}: torch needs ~5-10 GiB")
    return Plan(
        host=host,
        spec=spec,
        facts=facts,
        layout=inp.layout,
        torch=choice,
        flash_attn=fa,
        conda=conda.install,
        steps=steps,
        host_python=host_python,
        warnings=warnings,
        backend=backend,
    )


def state_json(plan: Plan, previous: Optional[dict] = None, now: float = 0.0) -> dict:
    """The consolidated host-side state file: each step's last fingerprint, exit code and times."""
    kept = (previous or {}).get("steps")
    steps: Dict[str, dict] = {k: v for k, v in kept.items() if isinstance(v, dict)} if isinstance(kept, dict) else {}
    for s in plan.steps:
        rec = plan.facts.results.get(s.name)
        if rec is not None:
            steps[s.name] = dict(rec)
    return {
        "version": 1,
        "env": plan.spec.name,
        "env_python": plan.env_python,
        "spec_digest": plan.spec.digest(),
        "updated": now,
        "steps": steps,
    }


def validate_force(names: Sequence[str]) -> List[str]:
    from orchestrator.errors import ExitCode, OrchError

    out = []
    for n in names:
        if n not in STEPS:
            raise OrchError(f"--force {n}: no such step", ExitCode.USAGE, hint=f"steps: {', '.join(STEPS)}")
        out.append(n)
    return out
