"""Test helpers: nvidia-smi / nvcc shims that replay the real H200 fixture files, and a
local run of the real probe script with them on PATH.

Used by the unit tests (probe, plan) and the integration test (where the shims sit in the
test host's extra_path).
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Optional, Sequence

import timing

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpu-host" / "h200"

# Documented failure outputs (facts sheet C): message, exit code.
FAILURES = {
    "no-driver": (
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that "
        "the latest NVIDIA driver is installed and running.",
        9,
    ),
    "mismatch": ("Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.159", 18),
    "no-devices": ("No devices were found", 6),
}

_SHIM = """#!/bin/bash
# nvidia-smi shim (orch tests): replays real outputs captured on an H200 host.
D={fixtures}
MODE={mode}
case "$MODE" in
  no-driver|mismatch|no-devices) printf '%s\\n' {message}; exit {rc} ;;
esac
case "$*" in
  *--query-gpu=*compute_cap*)
    if [ "$MODE" = old-driver ]; then
      echo 'Field "compute_cap" is not a valid field to query.'; echo; echo "Run 'nvidia-smi -h' for help."; exit 2
    fi
    cat "$D/nvidia-smi-query.csv" ;;
  *--query-gpu=*) cut -d, -f1-7,9 "$D/nvidia-smi-query.csv" ;;
  "-q -x")
    if [ "$MODE" = old-driver ]; then sed '/<cuda_version>/d' "$D/nvidia-smi-q-x.xml"
    else cat "$D/nvidia-smi-q-x.xml"; fi ;;
  "-L") cat "$D/nvidia-smi-L.txt" ;;
  "") cat "$D/nvidia-smi.txt" ;;
  *) echo "nvidia-smi shim: unsupported arguments: $*" >&2; exit 2 ;;
esac
"""

_NVCC = """#!/bin/bash
# nvcc shim (orch tests): replays `nvcc --version` from the H200 host.
cat {fixtures}/nvcc-version.txt
"""


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _write_exec(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def write_gpu_shims(bin_dir: Path, mode: str = "ok", nvcc: bool = True, fixtures: Path = FIXTURES) -> Path:
    """Write nvidia-smi (and nvcc) shims into bin_dir. mode: ok | old-driver | no-driver | mismatch | no-devices."""
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    message, rc = FAILURES.get(mode, ("", 0))
    _write_exec(
        bin_dir / "nvidia-smi", _SHIM.format(fixtures=_q(str(fixtures)), mode=_q(mode), message=_q(message), rc=rc)
    )
    if nvcc:
        _write_exec(bin_dir / "nvcc", _NVCC.format(fixtures=_q(str(fixtures))))
    return bin_dir


def run_probe_locally(
    workdir: str,
    path_prefix: Sequence[Path] = (),
    pythons: Sequence[str] = (),
    base_path: Optional[str] = "/usr/bin:/bin",
) -> str:
    """Run the real probe script with bash here, PATH = path_prefix + base_path."""
    from orchestrator.provision import probe

    env = dict(os.environ)
    env["PATH"] = ":".join([str(p) for p in path_prefix] + ([base_path] if base_path else []))
    out = subprocess.run(
        probe.probe_command(workdir, pythons),
        shell=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=timing.scaled(60),
        executable="/bin/bash",
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def make_facts(
    *,
    workdir: str = "/home/u/orch",
    gpus: Sequence[tuple] = (("NVIDIA H200", "9.0", 143771),),
    driver: str = "580.159.04",
    cuda: str = "13.0",
    gpu_kind: str = "ok",
    nvcc: str = "",
    nvcc_path: str = "",
    glibc: str = "2.39",
    arch: str = "x86_64",
    cpus: int = 16,
    mem_gb: float = 125.0,
    tools: Sequence[str] = ("bash", "tmux", "rsync", "git", "gcc", "g++", "curl", "sha256sum", "python3"),
    pythons: Sequence[tuple] = (("python3", "/usr/bin/python3", "3.12.3", True, None),),
    conda: Sequence = (),
):
    """Synthetic HostFacts for plan tests (the probe's own tests use the real script)."""
    from orchestrator.provision import gpu as g
    from orchestrator.provision.probe import HostFacts, PythonInfo

    if gpu_kind == "ok" and gpus:
        report = g.GpuReport(
            g.GpuDiagnosis("ok", "nvidia-smi works"),
            driver_version=driver,
            cuda_version=cuda,
            nvidia_smi_path="/usr/bin/nvidia-smi",
        )
        report.gpus = [
            g.Gpu(index=i, name=n, compute_cap=cc, compute_cap_source="nvidia-smi", memory_total_mib=m)
            for i, (n, cc, m) in enumerate(gpus)
        ]
    elif gpu_kind == "ok":
        report = g.GpuReport(g.diagnose(127, "nvidia-smi: command not found"))
    else:
        message, rc = FAILURES.get(gpu_kind, ("nvidia-smi: command not found", 127))
        report = g.GpuReport(g.diagnose(rc, message))
    facts = HostFacts(
        workdir=workdir,
        os="Ubuntu 24.04.3 LTS",
        kernel="Linux 6.8",
        arch=arch,
        glibc=glibc,
        cpus=cpus,
        mem_total_gb=mem_gb,
        mem_available_gb=mem_gb,
        disk_path="/",
        disk_free_gb=64,
        home="/home/u",
        gpu=report,
        nvcc_version=nvcc,
        nvcc_path=nvcc_path,
    )
    facts.tools = {t: f"/usr/bin/{t}" for t in tools}
    facts.pythons = [
        PythonInfo(path=p, name=n, version=v, venv=venv, packages={"torch": torch}) for n, p, v, venv, torch in pythons
    ]
    facts.conda = list(conda)
    return facts


def with_env_python(
    facts,
    path: str,
    version: str = "3.11.9",
    torch: Optional[str] = None,
    torch_cuda: Optional[str] = None,
    flash_attn: Optional[str] = None,
):
    """Facts where the env interpreter at PATH exists (with these packages)."""
    from orchestrator.provision.probe import PythonInfo

    facts.envs[path] = PythonInfo(
        path=path,
        version=version,
        executable=path,
        venv=True,
        packages={"torch": torch, "flash-attn": flash_attn},
        torch_cuda=torch_cuda,
    )
    return facts
