"""configs/envs/NAME.yaml -> EnvSpec, validated once; errors name file, key and expectation.

The same typed builder as experiments and hosts (remote.spec.build) checks the keys and their
types; `_check` adds what a type cannot say (version patterns, which keys go together).

    manager: conda            # conda (Miniconda, the default) | miniforge | venv
    python: "3.11"            # conda/miniforge: the env's python; venv: "system" or "3.11"
                              #   (then python3.11 must exist on the host)
    packages: [transformers>=4.40]   # pip requirements installed after torch
    torch:
      version: auto           # auto | none | preinstalled | "2.2" | "2.2.2"
      cuda: auto              # auto | cpu | cu121 | ...
    flash_attn:
      wanted: true            # try to install it
      required: false         # fail the bootstrap when it cannot be installed
      version: auto           # or a pin such as "2.5.6"
    accept_anaconda_tos: false   # Miniconda's default channels need the Anaconda ToS accepted
    system_site_packages: false  # venv only: see the system python's packages (e.g. a preinstalled torch)
    conda:
      installer_url: ""       # default: latest Miniconda3 / Miniforge3 for the host's arch
      installer_sha256: ""    # default: looked up next to the installer
      prefix: ""              # default: <workdir>/miniconda3 or <workdir>/miniforge3
      use_existing: true      # reuse a usable conda already on the host
    timeouts:                 # minutes the controller waits for a detached step
      install: 60
      flash_attn_build: 300
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Literal, Tuple, get_args

from orchestrator.config.project import check_name, control_char
from orchestrator.config.yamlfile import read_mapping
from orchestrator.errors import ExitCode, OrchError
from remote.spec import SpecError, build

Manager = Literal["conda", "miniforge", "venv"]
MANAGERS = get_args(Manager)
_VERSION_RE = re.compile(r"\d+\.\d+(\.\d+)?([.+-][A-Za-z0-9.]+)?")  # fullmatch
# Sections and lists that may be left empty in the YAML (`torch:` with every line commented out).
_MAY_BE_EMPTY = ("packages", "torch", "flash_attn", "conda", "timeouts")


@dataclass
class TorchSpec:
    version: str = "auto"
    cuda: str = "auto"


@dataclass
class FlashAttnSpec:
    wanted: bool = True
    required: bool = False
    version: str = "auto"


@dataclass
class CondaSpec:
    installer_url: str = ""
    installer_sha256: str = ""
    prefix: str = ""
    use_existing: bool = True


@dataclass
class Timeouts:
    install: float = 60.0
    flash_attn_build: float = 300.0


@dataclass
class EnvFile:
    """The keys a configs/envs/NAME.yaml may hold, with their types: remote.spec.build checks
    them (unknown keys, wrong types); `_check` then checks what a type cannot say."""

    manager: Manager = "conda"
    python: str = "3.11"  # venv: "system" unless given
    packages: List[str] = field(default_factory=list)
    torch: TorchSpec = field(default_factory=TorchSpec)
    flash_attn: FlashAttnSpec = field(default_factory=FlashAttnSpec)
    accept_anaconda_tos: bool = False
    system_site_packages: bool = False
    conda: CondaSpec = field(default_factory=CondaSpec)
    timeouts: Timeouts = field(default_factory=Timeouts)


@dataclass
class EnvSpec(EnvFile):
    name: str = ""
    path: str = ""  # the file it came from (for messages)

    @property
    def uses_conda(self) -> bool:
        return self.manager in ("conda", "miniforge")

    def to_dict(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        data = self.to_dict()
        data.pop("path", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _strings(obj: Any, prefix: str = "") -> Iterator[Tuple[str, Any, str, str]]:
    """(dotted key, the object holding it, its attribute, the value) for every string field."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _strings(value, f"{prefix}{f.name}.")
        elif isinstance(value, str):
            yield f"{prefix}{f.name}", obj, f.name, value


def _check(spec: EnvSpec, raw: Dict[str, Any], where: str) -> None:
    def need(key: str, ok: bool, expected: str, got: Any) -> None:
        if not ok:
            raise OrchError(f"{where}: key '{key}': expected {expected}, got {got!r}", ExitCode.CONFIG)

    for key, holder, attr, value in _strings(spec):
        need(key, not control_char(value.strip()), "no control characters (newline, tab, ...)", value)
        setattr(holder, attr, value.strip())
    for p in spec.packages:
        need("packages", not control_char(p.strip()), "requirements without control characters (newline, tab, ...)", p)
        need("packages", bool(p.strip()), "a list of pip requirement strings", p)
        need("packages", not p.strip().startswith("-"), "requirements, not pip options", p)
        need(
            "packages",
            not re.match(r"^\s*(torch|flash[-_]attn)\b", p, re.IGNORECASE),
            "no torch/flash-attn here (use the torch: and flash_attn: keys)",
            p,
        )
    spec.packages = [p.strip() for p in spec.packages]

    if "python" not in raw and not spec.uses_conda:
        spec.python = "system"
    # yaml: python: 3.10 -> 3.1
    need("python", spec.python != "3.1", 'a quoted version such as "3.10" (unquoted 3.10 reads as 3.1)', 3.1)
    need(
        "python",
        bool(re.fullmatch(r"3\.\d+", spec.python)) or (spec.manager == "venv" and spec.python == "system"),
        '"3.X"' + (' or "system"' if spec.manager == "venv" else ""),
        spec.python,
    )

    t = spec.torch
    need(
        "torch.version",
        t.version in ("auto", "none", "preinstalled") or bool(re.fullmatch(r"\d+\.\d+(\.\d+)?", t.version)),
        'auto, none, preinstalled or a version such as "2.2" or "2.2.2"',
        t.version,
    )
    need(
        "torch.cuda",
        t.cuda in ("auto", "cpu") or bool(re.fullmatch(r"cu\d{3}", t.cuda)),
        "auto, cpu or a variant such as cu121",
        t.cuda,
    )

    fa = spec.flash_attn
    need(
        "flash_attn.version",
        fa.version == "auto" or bool(_VERSION_RE.fullmatch(fa.version)),
        'auto or a version such as "2.5.6"',
        fa.version,
    )
    need("flash_attn.required", not (fa.required and not fa.wanted), "false when flash_attn.wanted is false", True)

    need(
        "system_site_packages",
        not (spec.system_site_packages and spec.manager != "venv"),
        "false unless manager is venv",
        True,
    )
    need(
        "torch.version",
        not (t.version == "preinstalled" and spec.manager == "venv" and not spec.system_site_packages),
        "not preinstalled in a venv without system_site_packages: true",
        "preinstalled",
    )

    c = spec.conda
    need(
        "conda.installer_url",
        not c.installer_url or bool(re.match(r"^(https?|file)://", c.installer_url)),
        "an https://, http:// or file:// URL",
        c.installer_url,
    )
    c.installer_sha256 = c.installer_sha256.lower()
    need(
        "conda.installer_sha256",
        not c.installer_sha256 or bool(re.fullmatch(r"[0-9a-f]{64}", c.installer_sha256)),
        "64 hex digits",
        c.installer_sha256,
    )
    need(
        "conda.prefix",
        not c.prefix or (c.prefix.startswith("/") and " " not in c.prefix),
        "an absolute path without spaces (the installer refuses spaces)",
        c.prefix,
    )
    need("conda", not raw.get("conda") or spec.uses_conda, "no conda: section when manager is venv", raw.get("conda"))

    for key in ("install", "flash_attn_build"):
        minutes = getattr(spec.timeouts, key)
        need(f"timeouts.{key}", minutes > 0, "a positive number (minutes)", minutes)


def parse(data: Any, name: str, path: str = "") -> EnvSpec:
    """A mapping (the YAML) -> EnvSpec, through the same typed builder as experiments and hosts."""
    where = path or f"configs/envs/{name}.yaml"
    raw = dict(data) if isinstance(data, dict) else data
    if isinstance(raw, dict):
        for key in _MAY_BE_EMPTY:
            if key in raw and raw[key] is None:
                del raw[key]
    try:
        base = build(EnvFile, raw, where)
    except SpecError as exc:
        raise OrchError(str(exc), ExitCode.CONFIG) from None
    spec = EnvSpec(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)}, name=name, path=where)
    _check(spec, raw or {}, where)
    return spec


def env_path(project_root: Path, name: str) -> Path:
    return Path(project_root) / "configs" / "envs" / f"{check_name('env', name)}.yaml"


def load(project_root: Path, name: str) -> EnvSpec:
    path = env_path(project_root, name)
    rel = f"configs/envs/{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise OrchError(f"no env spec {rel}", ExitCode.CONFIG, hint=f"known envs: {', '.join(known) or 'none'}")
    return parse(read_mapping(path, rel), name, rel)
