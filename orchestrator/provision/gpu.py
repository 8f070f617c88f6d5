"""nvidia-smi output -> GPU facts, and nvidia-smi failures -> a specific diagnosis.

Pure functions only: the probe (bootstrap/probe.sh, shipped by orchestrator/provision/probe.py)
runs nvidia-smi on the host, and the raw text and exit codes come here. Three sources are combined:

- ``--query-gpu=...`` CSV: per-GPU index, name, memory, compute capability. The
  ``compute_cap`` field does not exist on old drivers (R470: 'Field "compute_cap" is not
  a valid field to query.'); the probe then re-queries without it and the capability
  comes from a name-based table.
- ``-q -x`` XML: the driver's maximum CUDA version (``<cuda_version>``), which is not a
  ``--query-gpu`` field.
- the plain ``nvidia-smi`` header ("CUDA Version: 13.0"): fallback for the same.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

from orchestrator.backends.base import SchedulerGpus

# The field list the probe asks for (the same one the H200 fixture was captured with);
# probe.py passes it to bootstrap/probe.sh, so this is the only copy.
QUERY_FIELDS = (
    "index",
    "name",
    "uuid",
    "driver_version",
    "memory.total",
    "memory.used",
    "utilization.gpu",
    "compute_cap",
    "pci.bus_id",
)
QUERY_FIELDS_NO_CC = tuple(f for f in QUERY_FIELDS if f != "compute_cap")


@dataclass
class Gpu:
    index: int
    name: str
    uuid: str = ""
    memory_total_mib: Optional[int] = None
    memory_used_mib: Optional[int] = None
    utilization_pct: Optional[int] = None
    compute_cap: Optional[str] = None  # "9.0"
    compute_cap_source: str = ""  # "nvidia-smi" | "name table" | ""
    pci_bus_id: str = ""

    @property
    def cc_tuple(self) -> Optional[Tuple[int, int]]:
        return parse_cc(self.compute_cap)

    @property
    def sm(self) -> Optional[int]:
        cc = self.cc_tuple
        return None if cc is None else cc[0] * 10 + cc[1]


@dataclass
class GpuDiagnosis:
    kind: str  # ok | missing | no_driver | mismatch | no_devices | no_permission | failed
    message: str
    hint: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


@dataclass
class GpuReport:
    """Everything the probe learnt about the host's NVIDIA GPUs."""

    diagnosis: GpuDiagnosis
    gpus: List[Gpu] = field(default_factory=list)
    driver_version: str = ""
    cuda_version: str = ""  # the driver's max CUDA version, e.g. "13.0"
    nvidia_smi_path: str = ""
    notes: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.diagnosis.ok and bool(self.gpus)

    def compute_caps(self) -> List[Tuple[int, int]]:
        return [g.cc_tuple for g in self.gpus if g.cc_tuple is not None]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GpuReport":
        return cls(
            diagnosis=GpuDiagnosis(**data["diagnosis"]),
            gpus=[Gpu(**g) for g in data.get("gpus", [])],
            driver_version=data.get("driver_version", ""),
            cuda_version=data.get("cuda_version", ""),
            nvidia_smi_path=data.get("nvidia_smi_path", ""),
            notes=list(data.get("notes", [])),
        )


def parse_cc(value: Optional[str]) -> Optional[Tuple[int, int]]:
    if not value:
        return None
    m = re.fullmatch(r"\s*([0-9]{1,3})\.([0-9]{1,3})\s*", str(value))
    return (int(m.group(1)), int(m.group(2))) if m else None


# --- compute capability by name (old drivers have no compute_cap field) -----------
# Also read against the GPU types a scheduler names (Slurm's gres: `rtx2080ti`,
# `nvidia_a100-sxm4-80gb`, `v100l`), which sites spell without spaces: hence the optional
# spaces and the bare GeForce numbers.


def _geforce(numbers: str) -> str:
    """GeForce cards by number: 'RTX 2080 Ti', 'rtx2080ti', 'gtx1080', '3090'."""
    return rf"(?:\b(?:GTX|RTX) ?|\b){numbers}(?: ?(?:Ti|SUPER))?\b"


# Checked in order, first match wins: put the more specific patterns first.  Every entry is
# NVIDIA's published compute capability (developer.nvidia.com/cuda-gpus); ambiguous names
# (a bare "TITAN X": Maxwell or Pascal; a bare MIG profile) are left out on purpose.
_CC_BY_NAME: Sequence[Tuple[str, str]] = (
    (r"\bGB300\b|\bB300\b", "10.3"),
    (r"\bGB200\b|\bB200\b|\bB100\b", "10.0"),
    (r"RTX PRO \d+ Blackwell|" + _geforce("50[5-9]0"), "12.0"),
    (r"\bGH200\b|\bH100\b|\bH200\b|\bH800\b|\bH20\b", "9.0"),
    (r"RTX ?[2-6]000(?: SFF)? Ada|RTX ?5880 Ada|\bL40S?\b|\bL4\b|\bL20\b|" + _geforce("40[5-9]0"), "8.9"),
    (r"\bA100L?\b|\bA800\b|\bA30\b", "8.0"),
    (
        r"RTX ?A\d{4}|\bA(?:2000|4000|4500|5000|5500|6000)\b|\bA40\b|\bA10G?\b|\bA16\b|\bA2\b|" + _geforce("30[5-9]0"),
        "8.6",
    ),
    (
        r"\bT4\b|TITAN ?RTX|Quadro RTX|\bRTX ?[4568]000\b(?!.*\bAda\b)|"
        + _geforce("20[6-8]0")
        + "|"
        + _geforce("16[5-6]0"),
        "7.5",
    ),
    (r"\bV100[SL]?\b|TITAN ?V\b", "7.0"),
    (r"\bP100\b", "6.0"),
    (r"\bP40\b|\bP4\b|TITAN ?Xp\b|" + _geforce("10[5-8]0"), "6.1"),
    (r"\bK80\b", "3.7"),
)


def compute_cap_from_name(name: str) -> Optional[str]:
    for pattern, cc in _CC_BY_NAME:
        if re.search(pattern, name, re.IGNORECASE):
            return cc
    return None


# --- parsers ------------------------------------------------------------------------


def _int_or_none(text: str) -> Optional[int]:
    text = text.strip()
    m = re.match(r"^([0-9]{1,18})(?![0-9])", text)  # [0-9]: \d takes any script's digits
    return int(m.group(1)) if m else None


def _na(text: str) -> bool:
    return text.strip() in ("", "N/A", "[N/A]", "[Not Supported]", "Not Supported")


def parse_query_csv(text: str, fields: Sequence[str] = QUERY_FIELDS) -> List[Gpu]:
    """``nvidia-smi --query-gpu=FIELDS --format=csv,noheader,nounits`` -> GPUs."""
    gpus: List[Gpu] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(fields):
            raise ValueError(f"nvidia-smi query line has {len(parts)} fields, expected {len(fields)}: {line!r}")
        row = dict(zip(fields, parts))
        if not re.fullmatch(r"[0-9]{1,6}", row.get("index", "")):
            raise ValueError(f"not an nvidia-smi query line: {line!r}")
        gpu = Gpu(index=int(row["index"]), name=row.get("name", ""))
        gpu.uuid = row.get("uuid", "")
        gpu.memory_total_mib = _int_or_none(row.get("memory.total", ""))
        gpu.memory_used_mib = _int_or_none(row.get("memory.used", ""))
        gpu.utilization_pct = _int_or_none(row.get("utilization.gpu", ""))
        gpu.pci_bus_id = row.get("pci.bus_id", "")
        cc = row.get("compute_cap", "")
        if cc and not _na(cc) and parse_cc(cc):
            gpu.compute_cap, gpu.compute_cap_source = cc, "nvidia-smi"
        gpus.append(gpu)
    return gpus


def query_driver_version(text: str, fields: Sequence[str] = QUERY_FIELDS) -> str:
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == len(fields) and "driver_version" in fields:
            return parts[list(fields).index("driver_version")]
    return ""


@dataclass
class XmlInfo:
    driver_version: str = ""
    cuda_version: str = ""
    attached_gpus: Optional[int] = None
    gpus: List[Gpu] = field(default_factory=list)


def parse_xml(text: str) -> XmlInfo:
    """``nvidia-smi -q -x`` -> driver version, max CUDA version, and the GPUs it lists."""
    # The DOCTYPE names an external DTD; ElementTree does not fetch it.
    root = ET.fromstring(text.encode() if isinstance(text, str) else text)
    if root.tag != "nvidia_smi_log":
        raise ValueError(f"unexpected XML root <{root.tag}>, expected <nvidia_smi_log>")
    info = XmlInfo(
        driver_version=(root.findtext("driver_version") or "").strip(),
        cuda_version=(root.findtext("cuda_version") or "").strip(),
    )
    attached = (root.findtext("attached_gpus") or "").strip()
    info.attached_gpus = int(attached) if re.fullmatch(r"[0-9]{1,6}", attached) else None
    for i, node in enumerate(root.findall("gpu")):
        gpu = Gpu(index=i, name=(node.findtext("product_name") or "").strip())
        gpu.uuid = (node.findtext("uuid") or "").strip()
        gpu.pci_bus_id = node.get("id", "")
        gpu.memory_total_mib = _int_or_none(node.findtext("fb_memory_usage/total") or "")
        gpu.memory_used_mib = _int_or_none(node.findtext("fb_memory_usage/used") or "")
        gpu.utilization_pct = _int_or_none(node.findtext("utilization/gpu_util") or "")
        info.gpus.append(gpu)
    if not re.fullmatch(r"[0-9]{1,3}\.[0-9]{1,3}", info.cuda_version):  # N/A, or not a version
        info.cuda_version = ""
    return info


_HEADER_RE = re.compile(r"Driver Version:\s*([0-9.]+).*?CUDA Version:\s*([0-9]{1,3}\.[0-9]{1,3}|N/A)")


def parse_plain_header(text: str) -> Tuple[str, str]:
    """Plain ``nvidia-smi`` (or ``-q``) -> (driver version, max CUDA version)."""
    m = _HEADER_RE.search(text)
    if m:
        cuda = m.group(2)
        return m.group(1), "" if cuda == "N/A" else cuda
    driver = re.search(r"Driver Version\s*:\s*([\d.]+)", text)
    cuda = re.search(r"CUDA Version\s*:\s*([0-9]{1,3}\.[0-9]{1,3})", text)
    return (driver.group(1) if driver else "", cuda.group(1) if cuda else "")


def parse_list(text: str) -> List[Gpu]:
    """``nvidia-smi -L`` -> GPUs (index, name, uuid)."""
    gpus = []
    for m in re.finditer(r"^GPU ([0-9]{1,6}): (.+?) \(UUID: ([^)]+)\)", text, re.MULTILINE):
        gpus.append(Gpu(index=int(m.group(1)), name=m.group(2).strip(), uuid=m.group(3).strip()))
    return gpus


# --- diagnoses ----------------------------------------------------------------------

_NO_DRIVER = "couldn't communicate with the NVIDIA driver"
_MISMATCH = "Driver/library version mismatch"
_NO_DEVICES = "No devices were found"


def diagnose(rc: Optional[int], output: str) -> GpuDiagnosis:
    """One nvidia-smi invocation's exit code and output -> what is wrong, in words."""
    text = output or ""
    if rc == 0 and _NO_DEVICES not in text:
        return GpuDiagnosis("ok", "nvidia-smi works")
    if rc == 127 or "command not found" in text or rc is None:
        return GpuDiagnosis(
            "missing",
            "nvidia-smi not found: no NVIDIA driver is installed (or it is not on PATH)",
            hint="on a GPU host install the NVIDIA driver; if it lives elsewhere add its bin/ folder "
            "to the host's extra_path",
        )
    if _MISMATCH in text or rc == 18:
        return GpuDiagnosis(
            "mismatch",
            "NVML driver/library version mismatch: the NVIDIA driver was updated but the old kernel "
            "module is still loaded",
            hint="reboot the host (or reload the nvidia kernel modules)",
        )
    if _NO_DRIVER in text or rc == 9:
        return GpuDiagnosis(
            "no_driver",
            "nvidia-smi could not communicate with the NVIDIA driver: the driver is not installed or not loaded",
            hint="install/load the NVIDIA driver (check `lsmod | grep nvidia`, dmesg), then re-run",
        )
    if _NO_DEVICES in text or rc == 6:
        return GpuDiagnosis(
            "no_devices",
            "nvidia-smi found no GPUs: the driver is loaded but no device is visible",
            hint="check that the GPU is attached to this machine/container (e.g. docker --gpus, "
            "CUDA_VISIBLE_DEVICES is not the issue for nvidia-smi)",
        )
    if rc == 4:
        return GpuDiagnosis(
            "no_permission", "nvidia-smi: insufficient permissions", hint="check /dev/nvidia* permissions"
        )
    if rc == 12:
        return GpuDiagnosis(
            "no_driver", "nvidia-smi: the NVML shared library was not found", hint="reinstall the NVIDIA driver"
        )
    if rc == 15:
        return GpuDiagnosis(
            "failed", "nvidia-smi: a GPU has fallen off the bus", hint="reboot the host; check dmesg for Xid errors"
        )
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return GpuDiagnosis("failed", f"nvidia-smi failed (exit {rc}): {first or 'no output'}")


def is_invalid_field(output: str) -> bool:
    return "is not a valid field to query" in (output or "")


def build_report(
    *,
    smi_path: str,
    query_rc: Optional[int],
    query_out: str,
    query_fields: Sequence[str] = QUERY_FIELDS,
    xml_rc: Optional[int] = None,
    xml_out: str = "",
    plain_rc: Optional[int] = None,
    plain_out: str = "",
) -> GpuReport:
    """Combine the probe's nvidia-smi outputs into one report (never raises)."""
    diagnosis = diagnose(query_rc, query_out)
    report = GpuReport(diagnosis=diagnosis, nvidia_smi_path=smi_path)
    if not diagnosis.ok:
        return report
    try:
        report.gpus = parse_query_csv(query_out, query_fields)
    except ValueError as exc:
        report.diagnosis = GpuDiagnosis("failed", f"could not parse nvidia-smi --query-gpu output: {exc}")
        return report
    report.driver_version = query_driver_version(query_out, query_fields)
    if "compute_cap" not in query_fields:
        report.notes.append("this driver has no compute_cap query field (old driver): capability from the GPU name")
    if xml_rc == 0 and xml_out.strip():
        try:
            xml = parse_xml(xml_out)
            report.cuda_version = xml.cuda_version
            report.driver_version = report.driver_version or xml.driver_version
        except (ET.ParseError, ValueError) as exc:
            report.notes.append(f"nvidia-smi -q -x unreadable: {exc}")
    if not report.cuda_version and plain_out:
        driver, cuda = parse_plain_header(plain_out)
        report.cuda_version = cuda
        report.driver_version = report.driver_version or driver
    if not report.cuda_version:
        report.notes.append("the driver's maximum CUDA version is unknown (no <cuda_version>, no header)")
    for gpu in report.gpus:
        if gpu.compute_cap is None:
            cc = compute_cap_from_name(gpu.name)
            if cc:
                gpu.compute_cap, gpu.compute_cap_source = cc, "name table"
            else:
                report.notes.append(f"unknown compute capability for {gpu.name!r}")
    if not report.gpus:
        report.diagnosis = GpuDiagnosis("no_devices", "nvidia-smi listed no GPUs")
    return report


def arch_name(cc: Optional[Tuple[int, int]]) -> str:
    if cc is None:
        return "unknown"
    major, minor = cc
    if major >= 12 or major == 10 or major == 11:
        return "Blackwell"
    if major == 9:
        return "Hopper"
    if (major, minor) == (8, 9):
        return "Ada"
    if major == 8:
        return "Ampere"
    if (major, minor) == (7, 5):
        return "Turing"
    if major == 7:
        return "Volta"
    if major == 6:
        return "Pascal"
    return "pre-Pascal"


def summary(report: GpuReport) -> str:
    """One line for tables: '1x NVIDIA H200 (sm_90, 141 GiB), driver 580.159.04, CUDA 13.0'."""
    if not report.diagnosis.ok:
        return report.diagnosis.message
    groups: dict = {}
    for g in report.gpus:
        groups.setdefault((g.name, g.compute_cap, g.memory_total_mib), []).append(g)
    parts = []
    for (name, cc, mem), members in groups.items():
        sm = f"sm_{cc.replace('.', '')}" if cc else "sm_?"
        mem_s = f", {mem / 1024:.0f} GiB" if mem else ""
        parts.append(f"{len(members)}x {name} ({sm}{mem_s})")
    return f"{', '.join(parts)}; driver {report.driver_version or '?'}, max CUDA {report.cuda_version or '?'}"


# --- GPU types a scheduler names (a login node without nvidia-smi) ---------------------

# A MIG slice's profile: `3g.40gb`, alone or after its GPU (`a100_3g.40gb`, `nvidia_h100_80gb_hbm3_1g.10gb`).
_MIG_PROFILE = re.compile(r"(?:^|[_.-])([1-8])g\.([0-9]+)gb$", re.IGNORECASE)


@dataclass
class ClusterGpus:
    """The GPUs a scheduler names for the host's jobs (what its compute nodes have; the job
    backend's ``cluster_gpus``), with the compute capabilities of the types that have a known one."""

    caps: List[Tuple[int, int]] = field(default_factory=list)  # one per known type, sorted
    names: List[str] = field(default_factory=list)  # the type of each cap, as the scheduler names it
    notes: List[str] = field(default_factory=list)  # types without a known capability, untyped GPUs
    unknown: List[str] = field(default_factory=list)  # those types ("" for a GPU of no named type)
    source: str = ""  # who named them ("sinfo"), for messages
    untyped: str = ""  # how a GPU of no named type is written there ("gres gpu:N")

    @property
    def present(self) -> bool:
        """The jobs get GPUs, whether or not their types are known."""
        return bool(self.caps or self.unknown)

    @property
    def found(self) -> bool:
        """Some GPU type has a known compute capability."""
        return bool(self.caps)


def caps_from_types(named: Optional[SchedulerGpus]) -> ClusterGpus:
    """GPU types as a scheduler names them -> compute capabilities (None: it names none).

    The type names are site-chosen (`a100`, `h100`, `nvidia_a100-sxm4-80gb`, `l40s`, `v100l`,
    `rtx2080ti`...): they are read with the same name table as old drivers' GPU names
    (underscores as spaces, so `nvidia_a100` reads as A100).  A MIG slice's type is its
    profile, after its GPU's name or alone (`a100_3g.40gb`, `3g.40gb`): alone it names no GPU.
    A type the table does not know, or a GPU without a type, is said in a note and listed in
    `unknown`: the jobs still get GPUs (a CUDA torch), only flash-attn cannot target them."""
    if named is None:
        return ClusterGpus()
    out = ClusterGpus(source=named.source, untyped=named.untyped)
    seen = set()
    for kind in named.types:
        if kind in seen:
            continue
        seen.add(kind)
        if not kind:
            out.notes.append(
                f"{named.source} lists GPUs without a type ({named.untyped}): their compute capability is unknown"
            )
            out.unknown.append(kind)
            continue
        cc = parse_cc(compute_cap_from_name(kind.replace("_", " ")))
        if cc is None:
            if _MIG_PROFILE.search(kind):
                out.notes.append(
                    f"{named.source} GPU type {kind!r} is a MIG slice of a GPU it does not name (an A100, A30, "
                    "H100, H200 or newer: sm_80 or later): its exact compute capability is unknown"
                )
            else:
                out.notes.append(f"{named.source} GPU type {kind!r} has no known compute capability")
            out.unknown.append(kind)
            continue
        out.caps.append(cc)
        out.names.append(kind)
    pairs = sorted(zip(out.caps, out.names))
    out.caps, out.names = [c for c, _ in pairs], [n for _, n in pairs]
    return out
