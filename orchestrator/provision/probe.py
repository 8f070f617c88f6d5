"""The host probe: one script, one SSH round trip, every fact bootstrap and `hosts check` need.

The script is bootstrap/probe.sh. `probe_command(workdir, pythons)` returns the shell text
to run on the host: bash -c with the script's text as one quoted argument, then its options
(the tools to look for, the nvidia-smi fields this module parses), the workdir and the
interpreters to inspect. The script prints sections::

    @@orch:begin NAME
    ...raw output of the section's commands...
    @@orch:end NAME RC

and `parse_probe(text, workdir)` turns that into `HostFacts`. Every parser is a pure
function over raw command output, tested on real fixtures; failures (no nvidia-smi, a
dead driver, missing tools) become facts and diagnoses, never exceptions.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from orchestrator import backends
from orchestrator.config.project import control_char
from orchestrator.contract.hostdocs import parse_json_object
from orchestrator.errors import Problem  # noqa: F401 (callers and tests name it here)
from orchestrator.provision import gpu as gpu_mod
from orchestrator.provision import scripts
from orchestrator.transport import shell

PROBE_VERSION = 1
TOOLS = (
    "bash",
    "tmux",
    "rsync",
    "git",
    "gcc",
    "g++",
    "make",
    "ninja",
    "curl",
    "wget",
    "sha256sum",
    "nvcc",
    "nvidia-smi",
    "conda",
    "python3",
    "timeout",
)


def probe_script(project_root: Optional[Path] = None) -> str:
    """The text of bootstrap/probe.sh (the project's copy when it has one, else orch's)."""
    return scripts.read_scripts(["probe.sh"], project_root)["probe.sh"]


def probe_command(workdir: str, pythons: Sequence[str] = (), project_root: Optional[Path] = None) -> str:
    """Shell text that runs the probe on the host: the script travels inside the command
    (one round trip, nothing uploaded), its inputs as arguments after it."""
    # --norc: bash started by sshd (stdin a socket) reads ~/.bashrc even for -c, and a
    # ~/.bashrc without an "interactive only" guard that prepends to PATH (pyenv, conda init)
    # would hide the host's extra_path from `command -v python3`.
    return shell.join(
        [
            "bash",
            "--norc",
            "-c",
            probe_script(project_root),
            "orch-probe",
            "--version",
            str(PROBE_VERSION),
            "--tools",
            " ".join(TOOLS),
            "--fields",
            ",".join(gpu_mod.QUERY_FIELDS),
            "--fields-nocc",
            ",".join(gpu_mod.QUERY_FIELDS_NO_CC),
            "--",
            workdir,
            *pythons,
        ]
    )


# --- facts ----------------------------------------------------------------------------


@dataclass
class Section:
    rc: Optional[int]
    text: str


@dataclass
class CondaInstall:
    prefix: str
    version: str = ""
    tos_plugin: bool = False  # conda-anaconda-tos is installed: defaults channels need acceptance
    conda_forge: bool = False  # .condarc names conda-forge (Miniforge)

    @property
    def conda(self) -> str:
        return f"{self.prefix}/bin/conda"

    @property
    def usable(self) -> bool:
        from orchestrator.provision.torch_select import vtuple

        return not self.version or vtuple(self.version) >= (4, 6)


@dataclass
class PythonInfo:
    path: str
    name: str = ""
    version: str = ""
    executable: str = ""
    prefix: str = ""
    base_prefix: str = ""
    venv: bool = False  # venv + ensurepip importable (Debian needs python3-venv)
    packages: Dict[str, Optional[str]] = field(default_factory=dict)
    torch_cuda: Optional[str] = None  # torch/version.py's cuda (None: CPU build or no torch)
    missing: bool = False
    broken: bool = False

    @property
    def minor(self) -> str:
        parts = self.version.split(".")
        return ".".join(parts[:2]) if len(parts) >= 2 else self.version


@dataclass
class HostFacts:
    workdir: str
    probed_at: float = 0.0
    os: str = ""
    kernel: str = ""
    arch: str = ""
    glibc: str = ""
    cpus: int = 0
    mem_total_gb: float = 0.0
    mem_available_gb: float = 0.0
    swap_gb: float = 0.0
    disk_path: str = ""
    disk_free_gb: float = 0.0
    home: str = ""
    workdir_exists: bool = False
    tools: Dict[str, str] = field(default_factory=dict)
    tmux_version: str = ""
    gpu: gpu_mod.GpuReport = field(
        default_factory=lambda: gpu_mod.GpuReport(gpu_mod.GpuDiagnosis("missing", "not probed"))
    )
    nvcc_path: str = ""
    nvcc_version: str = ""
    conda: List[CondaInstall] = field(default_factory=list)
    pythons: List[PythonInfo] = field(default_factory=list)
    envs: Dict[str, PythonInfo] = field(default_factory=dict)
    state: Dict[str, Any] = field(default_factory=dict)
    results: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    verify: Optional[Dict[str, Any]] = None
    tmux_sessions: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    # What the job backends read in the probe's sections of their schedulers (JobBackend.parse_facts;
    # Slurm: its partitions and bootstrap's live jobs), each key a backend's.  Saved beside the
    # other facts, not under a key of its own (facts.json, `hosts check --json`).
    cluster: Dict[str, Any] = field(default_factory=lambda: backends.cluster_facts({}, ""))

    def has(self, tool: str) -> bool:
        return bool(self.tools.get(tool))

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(data.pop("cluster"))
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "HostFacts":
        data = dict(data)
        data["gpu"] = (
            gpu_mod.GpuReport.from_dict(data["gpu"])
            if data.get("gpu")
            else gpu_mod.GpuReport(gpu_mod.GpuDiagnosis("missing", "not probed"))
        )
        data["conda"] = [CondaInstall(**c) for c in data.get("conda", [])]
        data["pythons"] = [PythonInfo(**p) for p in data.get("pythons", [])]
        data["envs"] = {k: PythonInfo(**v) for k, v in data.get("envs", {}).items()}
        cluster = backends.cluster_facts({}, "")  # what a host without them has, for older files
        data["cluster"] = {k: data.pop(k, v) for k, v in cluster.items()}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


# --- parsers (pure) ---------------------------------------------------------------------

CUDA_VERSION = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}")  # what a CUDA version looks like (12.4)
_BEGIN = re.compile(r"^@@orch:begin (\S+)$")
_END = re.compile(r"^@@orch:end (\S+) (-?[0-9]{1,9})$")  # [0-9]: \d takes any script's digits


def parse_sections(text: str) -> Dict[str, Section]:
    sections: Dict[str, Section] = {}
    current: Optional[str] = None
    lines: List[str] = []
    for line in text.splitlines():
        m = _BEGIN.match(line)
        if m:
            current, lines = m.group(1), []
            continue
        m = _END.match(line)
        if m and current == m.group(1):
            body = "\n".join(lines)
            sections[current] = Section(int(m.group(2)), body.rstrip("\n") if body.endswith("\n") else body)
            current = None
            continue
        if current is not None:
            lines.append(line)
    if current is not None:  # truncated output: keep what arrived
        sections[current] = Section(None, "\n".join(lines))
    return sections


def parse_os_release(text: str) -> str:
    values = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            values[k.strip()] = v.strip().strip('"')
    return values.get("PRETTY_NAME") or " ".join(filter(None, [values.get("NAME"), values.get("VERSION_ID")]))


def parse_glibc(text: str) -> str:
    """'glibc 2.36' (getconf) or 'ldd (Debian GLIBC 2.36-9+deb12u14) 2.36' -> '2.36'; musl -> ''."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    m = re.match(r"^glibc (\d+\.\d+)", first)
    if m:
        return m.group(1)
    if "musl" in text.lower():
        return ""
    m = re.search(r"(\d+\.\d+)\s*$", first)
    return m.group(1) if m and ("GLIBC" in first.upper() or "GNU" in first.upper() or "ldd" in first) else ""


def parse_meminfo(text: str) -> Tuple[float, float, float]:
    """-> (total GB, available GB, swap GB), GB = 10^9 bytes... no: GiB, as `free -g` shows."""
    values = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+):\s+([0-9]{1,18})\s*kB", line)
        if m:
            values[m.group(1)] = int(m.group(2)) / (1024 * 1024)
    total = values.get("MemTotal", 0.0)
    return round(total, 1), round(values.get("MemAvailable", total), 1), round(values.get("SwapTotal", 0.0), 1)


def parse_df(text: str) -> Tuple[str, float]:
    """`df -Pk DIR` -> (mount point, free GiB)."""
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 6 and re.fullmatch(r"[0-9]{1,18}", parts[3]):
            return parts[5], round(int(parts[3]) / (1024 * 1024), 1)
    return "", 0.0


def parse_which(text: str) -> Dict[str, str]:
    tools = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            tools[k.strip()] = v.strip()
    return tools


def parse_nvcc(text: str) -> Tuple[str, str]:
    """`path=...` + `nvcc --version` -> (path, 'X.Y')."""
    path = ""
    m = re.search(r"^path=(.+)$", text, re.MULTILINE)
    if m:
        path = m.group(1).strip()
    v = re.search(r"release (\d+\.\d+)", text)
    return path, v.group(1) if v else ""


def parse_conda(text: str) -> List[CondaInstall]:
    found = []
    for line in text.splitlines():
        m = re.match(r"^prefix=(\S+) version=(\S*) tos_plugin=([01]) conda_forge=([01])$", line.strip())
        if m:
            found.append(CondaInstall(m.group(1), m.group(2), m.group(3) == "1", m.group(4) == "1"))
    return found


def _python_info(header: Dict[str, str], json_line: str) -> PythonInfo:
    info = PythonInfo(path=header.get("path", ""), name=header.get("name", ""))
    data = parse_json_object(json_line)
    if data is None:
        info.broken = True
        return info
    info.missing = bool(data.get("missing"))
    info.broken = bool(data.get("broken"))
    info.version, info.executable, info.prefix = (str(data.get(k) or "") for k in ("version", "executable", "prefix"))
    info.base_prefix = str(data.get("base_prefix") or "")
    info.venv = bool(data.get("venv", False))
    packages = ("torch", "flash-attn", "ninja", "transformers", "pip")
    # A version string, or null where the package is not installed; nothing else counts.
    info.packages = {k: data[k] for k in packages if k in data and (data[k] is None or isinstance(data[k], str))}
    cuda = data.get("torch_cuda")  # "12.4", or null for a CPU build
    info.torch_cuda = cuda if isinstance(cuda, str) and CUDA_VERSION.fullmatch(cuda) else None
    return info


def parse_pythons(text: str) -> List[PythonInfo]:
    """'name=.. path=..' / 'path=..' header lines, each followed by the snippet's JSON line."""
    out = []
    header: Optional[Dict[str, str]] = None
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            if header is not None:
                out.append(_python_info(header, line))
                header = None
            continue
        m = re.match(r"^(?:name=(\S+) )?path=(.*)$", line)
        header = {"name": m.group(1) or "", "path": m.group(2)} if m else None
    return out


def parse_results(text: str) -> Dict[str, Dict[str, Any]]:
    out = {}
    for line in text.splitlines():
        data = parse_json_object(line.strip())
        if data and isinstance(data.get("step"), str):
            out[data["step"]] = data
    return out


def gpu_report_from_sections(sections: Dict[str, Section], which: Dict[str, str]) -> gpu_mod.GpuReport:
    query = sections.get("nvidia-smi-query")
    if query is None:
        return gpu_mod.GpuReport(gpu_mod.GpuDiagnosis("failed", "the probe did not run nvidia-smi"))
    fields: Sequence[str] = gpu_mod.QUERY_FIELDS
    if "nvidia-smi-query-nocc" in sections:
        query, fields = sections["nvidia-smi-query-nocc"], gpu_mod.QUERY_FIELDS_NO_CC
    xml = sections.get("nvidia-smi-xml")
    plain = sections.get("nvidia-smi-plain")
    return gpu_mod.build_report(
        smi_path=which.get("nvidia-smi", ""),
        query_rc=query.rc,
        query_out=query.text,
        query_fields=fields,
        xml_rc=xml.rc if xml else None,
        xml_out=xml.text if xml else "",
        plain_rc=plain.rc if plain else None,
        plain_out=plain.text if plain else "",
    )


def parse_probe(text: str, workdir: str, now: Optional[float] = None) -> HostFacts:
    """The probe's whole output -> HostFacts. Never raises on odd output: records warnings."""
    s = parse_sections(text)
    facts = HostFacts(workdir=workdir, probed_at=time.time() if now is None else now)

    def body(name: str) -> str:
        return s[name].text if name in s else ""

    if "probe-version" not in s:
        facts.warnings.append("the probe printed nothing recognisable (is bash installed on the host?)")
    uname = body("uname").split()
    if len(uname) >= 3:
        facts.kernel, facts.arch = f"{uname[0]} {uname[1]}", uname[-1]
    facts.os = parse_os_release(body("os-release"))
    facts.glibc = parse_glibc(body("glibc"))
    n = body("nproc").strip()
    facts.cpus = int(n) if re.fullmatch(r"[0-9]{1,6}", n) else 0  # isdigit() takes "²", which int() refuses
    facts.mem_total_gb, facts.mem_available_gb, facts.swap_gb = parse_meminfo(body("meminfo"))
    facts.disk_path, facts.disk_free_gb = parse_df(body("disk"))
    facts.home = body("home")
    facts.workdir_exists = body("workdir-exists").strip() == "yes"
    resolved = body("workdir")  # the workdir as an absolute path (a relative one is under $HOME)
    if resolved.startswith("/"):
        facts.workdir = resolved
    if control_char(facts.workdir) or control_char(facts.home):
        facts.warnings.append(
            f"the workdir resolves to {facts.workdir!r} on the host (home {facts.home!r}): "
            "a path with a control character is not usable"
        )
    facts.tools = parse_which(body("which"))
    m = re.search(r"tmux (\S+)", body("tmux"))
    facts.tmux_version = m.group(1) if m else ""
    facts.gpu = gpu_report_from_sections(s, facts.tools)
    if s.get("nvcc") and s["nvcc"].rc == 0:
        facts.nvcc_path, facts.nvcc_version = parse_nvcc(body("nvcc"))
    facts.conda = parse_conda(body("conda"))
    facts.pythons = parse_pythons(body("pythons"))
    facts.envs = {p.path: p for p in parse_pythons(body("envs"))}
    facts.state = (parse_json_object(body("state")) or {}) if s.get("state") and s["state"].rc == 0 else {}
    facts.results = parse_results(body("results"))
    facts.verify = parse_json_object(body("verify")) if s.get("verify") and s["verify"].rc == 0 else None
    facts.cluster = backends.cluster_facts(s, facts.workdir)
    facts.tmux_sessions = (
        [x.strip() for x in body("tmux-sessions").splitlines() if x.strip()]
        if s.get("tmux-sessions") and s["tmux-sessions"].rc == 0
        else []
    )
    return facts


# --- checks for `orch hosts check` ------------------------------------------------------


def problems(
    facts: HostFacts, *, need_gpu: bool = False, min_disk_gb: float = 20.0, login_node: bool = False
) -> List[Problem]:
    """What is wrong with a host.  LOGIN_NODE: a Slurm login node, where no NVIDIA driver is
    expected (its jobs' GPUs come from the partition's gres, which the backend checks)."""
    out: List[Problem] = []
    for w in facts.warnings:
        out.append(Problem("error", w))
    if not facts.has("tmux"):
        out.append(
            Problem(
                "error",
                "tmux is missing: jobs and long bootstrap steps run detached in tmux",
                "install it on the host (apt-get install tmux / dnf install tmux)",
            )
        )
    if not facts.has("rsync"):
        out.append(Problem("warning", "rsync is missing: code sync needs it", "apt-get install rsync"))
    if not facts.has("curl") and not facts.has("wget"):
        out.append(Problem("warning", "neither curl nor wget: installers cannot be downloaded"))
    if facts.disk_path and facts.disk_free_gb < min_disk_gb:
        out.append(
            Problem(
                "warning",
                f"only {facts.disk_free_gb:.0f} GiB free at {facts.disk_path} (workdir)",
                f"an env with torch needs ~10 GiB, a flash-attn build more; aim for >= {min_disk_gb:.0f} GiB",
            )
        )
    d = facts.gpu.diagnosis
    if not d.ok and not (login_node and d.kind == "missing"):
        level = "error" if (need_gpu or d.kind != "missing") else "warning"
        out.append(Problem(level, d.message, d.hint))
    for note in facts.gpu.notes:
        out.append(Problem("warning", note))
    return out


def fact_rows(facts: HostFacts) -> List[Tuple[str, str]]:
    """(label, value) rows for tables (`hosts show`, bootstrap --dry-run)."""

    def tool(name: str) -> str:
        return facts.tools.get(name) or "missing"

    pythons = ", ".join(f"{p.version} ({p.path})" for p in facts.pythons if p.version) or "none"
    conda = (
        ", ".join(f"{c.prefix} ({c.version or '?'}{', ToS plugin' if c.tos_plugin else ''})" for c in facts.conda)
        or "none"
    )
    return [
        ("os", f"{facts.os} ({facts.kernel}, {facts.arch}, glibc {facts.glibc or '?'})"),
        ("cpu / ram", f"{facts.cpus} cores, {facts.mem_total_gb:.0f} GiB RAM ({facts.mem_available_gb:.0f} available)"),
        ("disk", f"{facts.disk_free_gb:.0f} GiB free at {facts.disk_path or '?'}"),
        ("gpu", gpu_mod.summary(facts.gpu)),
        ("nvcc", f"{facts.nvcc_version} ({facts.nvcc_path})" if facts.nvcc_version else "none"),
        ("conda", conda),
        ("python", pythons),
        (
            "tools",
            f"tmux {facts.tmux_version or 'missing'}, rsync {'ok' if facts.has('rsync') else 'missing'}, "
            f"ninja {'ok' if facts.has('ninja') else 'missing'}, gcc {'ok' if facts.has('gcc') else 'missing'}, "
            f"curl {'ok' if facts.has('curl') else 'missing'}",
        ),
    ] + [row for backend in backends.every() for row in backend.fact_rows(facts.cluster)]


# --- effects: run it, save it -----------------------------------------------------------


def run_probe(
    transport: Any, pythons: Sequence[str] = (), timeout: float = 120.0, project_root: Optional[Path] = None
) -> HostFacts:
    """One round trip: run the probe over `transport` and parse it."""
    from orchestrator.errors import ExitCode, OrchError

    result = transport.run(probe_command(transport.workdir, pythons, project_root), check=False, timeout=timeout)
    facts = parse_probe(result.stdout, transport.workdir)
    if "probe-version" not in parse_sections(result.stdout):
        raise OrchError(
            f"the host probe failed (exit {result.rc}): {(result.stderr or result.stdout).strip()[:500]}",
            ExitCode.HOST_TOOLS,
            hint="the probe needs bash and coreutils on the host",
        )
    if control_char(facts.workdir) or control_char(facts.home):
        raise OrchError(
            f"{transport.host.name}: the workdir resolves to {facts.workdir!r} on the host, which "
            "contains a control character",
            ExitCode.CONFIG,
            hint="set `workdir` in the host config to a plain absolute path",
        )
    return facts


def facts_path(project_root: Path, host: str) -> Path:
    return Path(project_root) / ".orch" / "hosts" / f"{host}.facts.json"


def save_facts(project_root: Path, host: str, facts: HostFacts, extra: Optional[Dict[str, Any]] = None) -> Path:
    from orchestrator.localfiles import atomic_write_text, writing

    path = facts_path(project_root, host)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    data = facts.to_dict()
    if extra:
        data.update(extra)
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def load_facts(project_root: Path, host: str) -> Optional[Tuple[HostFacts, Dict[str, Any]]]:
    """-> (facts, the whole saved mapping incl. extras) or None when never probed."""
    path = facts_path(project_root, host)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return HostFacts.from_dict(data), data
    except (json.JSONDecodeError, TypeError, KeyError):
        return None
