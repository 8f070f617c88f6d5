"""configs/envs/NAME.yaml -> EnvSpec, validated once; errors name file, key and expectation.

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

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List


from orchestrator.config.yamlfile import read_mapping
from orchestrator.errors import ExitCode, OrchError
from orchestrator.config.project import check_name, control_char

MANAGERS = ("conda", "miniforge", "venv")
_VERSION_RE = re.compile(r"\d+\.\d+(\.\d+)?([.+-][A-Za-z0-9.]+)?")  # fullmatch


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
class EnvSpec:
    name: str
    path: str = ""  # the file it came from (for messages)
    manager: str = "conda"
    python: str = "3.11"
    packages: List[str] = field(default_factory=list)
    torch: TorchSpec = field(default_factory=TorchSpec)
    flash_attn: FlashAttnSpec = field(default_factory=FlashAttnSpec)
    accept_anaconda_tos: bool = False
    system_site_packages: bool = False
    conda: CondaSpec = field(default_factory=CondaSpec)
    timeouts: Timeouts = field(default_factory=Timeouts)

    @property
    def uses_conda(self) -> bool:
        return self.manager in ("conda", "miniforge")

    def to_dict(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        data = self.to_dict()
        data.pop("path", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class _Reader:
    def __init__(self, path: str):
        self.path = path

    def fail(self, key: str, expected: str, got: Any) -> OrchError:
        return OrchError(f"{self.path}: key {key}: expected {expected}, got {got!r}", ExitCode.CONFIG)

    def mapping(self, data: Any, key: str) -> Dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self.fail(key, "a mapping", data)
        return data

    def unknown(self, data: Dict[str, Any], allowed: List[str], prefix: str) -> None:
        for k in data:
            if k not in allowed:
                raise OrchError(
                    f"{self.path}: unknown key {prefix}{k}", ExitCode.CONFIG,
                    hint=f"known keys{' under ' + prefix.rstrip('.') if prefix else ''}: {', '.join(allowed)}",
                )

    def boolean(self, data: Dict[str, Any], key: str, default: bool, full: str) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(full, "true or false", value)
        return value

    def string(self, data: Dict[str, Any], key: str, default: str, full: str) -> str:
        value = data.get(key, default)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # python: 3.11 written without quotes
        if not isinstance(value, str):
            raise self.fail(full, "a string", value)
        if control_char(value.strip()):
            raise self.fail(full, "no control characters (newline, tab, ...)", value)
        return value.strip()

    def number(self, data: Dict[str, Any], key: str, default: float, full: str) -> float:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.fail(full, "a positive number (minutes)", value)
        return float(value)


def parse(data: Any, name: str, path: str = "") -> EnvSpec:
    r = _Reader(path or f"configs/envs/{name}.yaml")
    top = r.mapping(data, "(top level)")
    r.unknown(top, ["manager", "python", "packages", "torch", "flash_attn", "accept_anaconda_tos",
                    "system_site_packages", "conda", "timeouts"], "")
    spec = EnvSpec(name=name, path=r.path)

    spec.manager = r.string(top, "manager", "conda", "manager")
    if spec.manager not in MANAGERS:
        raise r.fail("manager", " | ".join(MANAGERS), spec.manager)

    spec.python = r.string(top, "python", "3.11" if spec.uses_conda else "system", "python")
    if spec.python == "3.1":  # yaml: python: 3.10 -> 3.1
        raise r.fail("python", 'a quoted version such as "3.10" (unquoted 3.10 reads as 3.1)', 3.1)
    if not (re.fullmatch(r"3\.\d+", spec.python) or (spec.manager == "venv" and spec.python == "system")):
        raise r.fail("python", '"3.X"' + (' or "system"' if spec.manager == "venv" else ""), spec.python)

    packages = top.get("packages", [])
    if packages is None:
        packages = []
    if not isinstance(packages, list) or not all(isinstance(p, str) and p.strip() for p in packages):
        raise r.fail("packages", "a list of pip requirement strings", packages)
    for p in packages:
        if control_char(p.strip()):
            raise r.fail("packages", "requirements without control characters (newline, tab, ...)", p)
    for p in packages:
        if p.strip().startswith("-"):
            raise r.fail("packages", "requirements, not pip options", p)
        if re.match(r"^\s*(torch|flash[-_]attn)\b", p, re.IGNORECASE):
            raise r.fail("packages", "no torch/flash-attn here (use the torch: and flash_attn: keys)", p)
    spec.packages = [p.strip() for p in packages]

    torch = r.mapping(top.get("torch"), "torch")
    r.unknown(torch, ["version", "cuda"], "torch.")
    spec.torch.version = r.string(torch, "version", "auto", "torch.version")
    if spec.torch.version not in ("auto", "none", "preinstalled") and not re.fullmatch(r"\d+\.\d+(\.\d+)?", spec.torch.version):
        raise r.fail("torch.version", 'auto, none, preinstalled or a version such as "2.2" or "2.2.2"', spec.torch.version)
    spec.torch.cuda = r.string(torch, "cuda", "auto", "torch.cuda")
    if spec.torch.cuda not in ("auto", "cpu") and not re.fullmatch(r"cu\d{3}", spec.torch.cuda):
        raise r.fail("torch.cuda", "auto, cpu or a variant such as cu121", spec.torch.cuda)

    fa = r.mapping(top.get("flash_attn"), "flash_attn")
    r.unknown(fa, ["wanted", "required", "version"], "flash_attn.")
    spec.flash_attn.wanted = r.boolean(fa, "wanted", True, "flash_attn.wanted")
    spec.flash_attn.required = r.boolean(fa, "required", False, "flash_attn.required")
    spec.flash_attn.version = r.string(fa, "version", "auto", "flash_attn.version")
    if spec.flash_attn.version != "auto" and not _VERSION_RE.fullmatch(spec.flash_attn.version):
        raise r.fail("flash_attn.version", 'auto or a version such as "2.5.6"', spec.flash_attn.version)
    if spec.flash_attn.required and not spec.flash_attn.wanted:
        raise r.fail("flash_attn.required", "false when flash_attn.wanted is false", True)

    spec.accept_anaconda_tos = r.boolean(top, "accept_anaconda_tos", False, "accept_anaconda_tos")
    spec.system_site_packages = r.boolean(top, "system_site_packages", False, "system_site_packages")
    if spec.system_site_packages and spec.manager != "venv":
        raise r.fail("system_site_packages", "false unless manager is venv", True)
    if spec.torch.version == "preinstalled" and spec.manager == "venv" and not spec.system_site_packages:
        raise r.fail("torch.version", "not preinstalled in a venv without system_site_packages: true", "preinstalled")

    conda = r.mapping(top.get("conda"), "conda")
    r.unknown(conda, ["installer_url", "installer_sha256", "prefix", "use_existing"], "conda.")
    spec.conda.installer_url = r.string(conda, "installer_url", "", "conda.installer_url")
    if spec.conda.installer_url and not re.match(r"^(https?|file)://", spec.conda.installer_url):
        raise r.fail("conda.installer_url", "an https://, http:// or file:// URL", spec.conda.installer_url)
    spec.conda.installer_sha256 = r.string(conda, "installer_sha256", "", "conda.installer_sha256").lower()
    if spec.conda.installer_sha256 and not re.fullmatch(r"[0-9a-f]{64}", spec.conda.installer_sha256):
        raise r.fail("conda.installer_sha256", "64 hex digits", spec.conda.installer_sha256)
    spec.conda.prefix = r.string(conda, "prefix", "", "conda.prefix")
    if spec.conda.prefix and (not spec.conda.prefix.startswith("/") or " " in spec.conda.prefix):
        raise r.fail("conda.prefix", "an absolute path without spaces (the installer refuses spaces)", spec.conda.prefix)
    spec.conda.use_existing = r.boolean(conda, "use_existing", True, "conda.use_existing")
    if conda and not spec.uses_conda:
        raise r.fail("conda", "no conda: section when manager is venv", conda)

    timeouts = r.mapping(top.get("timeouts"), "timeouts")
    r.unknown(timeouts, ["install", "flash_attn_build"], "timeouts.")
    spec.timeouts.install = r.number(timeouts, "install", 60, "timeouts.install")
    spec.timeouts.flash_attn_build = r.number(timeouts, "flash_attn_build", 300, "timeouts.flash_attn_build")
    return spec


def env_path(project_root: Path, name: str) -> Path:
    return Path(project_root) / "configs" / "envs" / f"{check_name('env', name)}.yaml"


def load(project_root: Path, name: str) -> EnvSpec:
    path = env_path(project_root, name)
    rel = f"configs/envs/{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise OrchError(f"no env spec {rel}", ExitCode.CONFIG,
                        hint=f"known envs: {', '.join(known) or 'none'}")
    return parse(read_mapping(path, rel), name, rel)
