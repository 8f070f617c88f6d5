"""Host configs: configs/hosts/NAME.yaml, ~/.ssh/config aliases, and the built-in `local`."""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from orchestrator.config.project import Project, check_name, control_char
from orchestrator.config.slurm import SlurmOptions
from orchestrator.config.slurm import check as check_slurm
from orchestrator.errors import ExitCode, OrchError

# YAML, the spec builder and file writing are imported where a host file is read or
# written: `orch status` and every transport import this module for HostConfig alone.

LOCAL = "local"
SCHEDULERS = ("tmux", "slurm")  # job backends a host may name (orchestrator/backends/)


@dataclass
class HostFile:
    """The keys a configs/hosts/NAME.yaml may hold (OpenSSH names where there is one)."""

    hostname: str = ""
    port: int = 22
    user: str = ""
    identity_file: str = ""
    known_hosts_file: str = "~/.ssh/known_hosts"
    proxy_jump: str = ""
    # A local command whose stdin/stdout is the connection, as OpenSSH's ProxyCommand (run by
    # /bin/sh; %h %p %r %n %% expanded).  One of proxy_jump and proxy_command, not both.
    proxy_command: str = ""
    workdir: str = "~/orch"  # where code, data and runs live on the host
    python: str = ""  # interpreter the jobs use there (bootstrap fills it in)
    extra_path: List[str] = field(default_factory=list)  # prepended to PATH remotely
    gpus: List[str] = field(default_factory=list)  # [] -> every GPU nvidia-smi lists
    connect_timeout: float = 10.0
    # Seconds of silence from the host before each keepalive that asks it for an answer (0:
    # none), and how many may go unanswered: one more due then gives the connection up as
    # lost (exit 5), (count + 1) x keepalive seconds after the host last spoke.  ssh's
    # ServerAliveInterval and ServerAliveCountMax (transport/liveness.py).  A quiet host
    # answers them all.
    keepalive: int = 15
    keepalive_count: int = 3
    # Seconds a transfer (rsync, SFTP) or a quick command may go without a byte from the
    # host before it is stopped, and a quick command may take to exit once its output has
    # ended: a stalled or hostile host must not hold orch forever.  A command run with a
    # timeout of its own (`orch status`) is stopped at that overall limit instead.
    io_timeout: float = 300.0
    # Seconds the host's warm worker (remote/warm.py: torch imported once, jobs forked from
    # it) waits for the next job before it leaves; 0 turns it off.  tmux hosts only.
    warm_worker: float = 600.0
    description: str = ""
    scheduler: str = "tmux"  # how jobs run there: one of SCHEDULERS (orchestrator/backends/)
    slurm: SlurmOptions = field(default_factory=SlurmOptions)  # sbatch options (scheduler: slurm)


@dataclass
class HostConfig(HostFile):
    name: str = ""
    source: str = ""  # where it came from: a file path, "~/.ssh/config" or "built-in"

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL

    @property
    def python_or_default(self) -> str:
        return self.python or "python3"

    def display(self) -> str:
        if self.is_local:
            return "local (this machine, no SSH)"
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.hostname}:{self.port}"


# Values that become paths, names or arguments on a host.  A control character in one is
# read differently by a line-based parser, a shell or tmux (a workdir with a newline
# once made code and runs land in another folder), so it is refused, not escaped.
_NO_CONTROL = (
    "hostname",
    "user",
    "identity_file",
    "known_hosts_file",
    "proxy_jump",
    "proxy_command",
    "workdir",
    "python",
    "extra_path",
    "gpus",
)


# The numbers of a host file: (key, lowest, whether the lowest itself is refused, highest,
# what is expected, a hint).  The highest keep a typo (keepalive: 1000000000000) from
# reaching a wait: past ~9.2e9 s Python's waits raise OverflowError, which ended the
# keepalive watch without a word (connect_timeout, io_timeout: every socket wait).
_NUMBERS = (
    (
        "port",
        1,
        False,
        65535,
        "a port number from 1 to 65535",
        "the port sshd listens on (22 unless the host's admin says otherwise)",
    ),
    (
        "connect_timeout",
        0,
        True,
        3600,
        "seconds above 0, at most 3600",
        "how long to wait for the host to answer, e.g. 10",
    ),
    (
        "io_timeout",
        1,
        False,
        86400,
        "seconds from 1 to 86400",
        "how long a transfer or a quick command may wait for the host's next byte, e.g. 300",
    ),
    (
        "keepalive",
        0,
        False,
        86400,
        "seconds from 0 to 86400",
        "seconds of silence before each keepalive, e.g. 15; 0 sends none (and never notices a dead host)",
    ),
    (
        "keepalive_count",
        1,
        False,
        1000,
        "a count from 1 to 1000",
        "how many keepalives may go unanswered before orch gives the connection up, e.g. 3",
    ),
    (
        "warm_worker",
        0,
        False,
        604800,
        "seconds from 0 to 604800 (a week)",
        "how long the host keeps torch imported for the next job, e.g. 600; 0 turns it off",
    ),
)

# The keys an ~/.ssh/config alias sets, by the ssh keyword they come from: a message about
# one names the line to fix.
SSH_KEYWORDS = {
    "port": "Port",
    "connect_timeout": "ConnectTimeout",
    "keepalive": "ServerAliveInterval",
    "keepalive_count": "ServerAliveCountMax",
}


def check_values(host: HostFile, where: str, ssh_config: bool = False) -> None:
    """One clear message (exit 3) for the first value of HOST that orch cannot use, naming
    WHERE and the key - or, for a host from ~/.ssh/config (SSH_CONFIG), the ssh keyword."""
    if host.scheduler not in SCHEDULERS:
        raise OrchError(
            f"{where}: key 'scheduler': expected one of {', '.join(SCHEDULERS)}, got {host.scheduler!r}",
            ExitCode.CONFIG,
            hint="tmux runs jobs in detached tmux sessions on the host itself; "
            "slurm submits them with sbatch from a cluster's login node",
        )
    check_slurm(host.slurm, where)
    for key, low, above, high, expected, hint in _NUMBERS:
        value = getattr(host, key)
        if (value > low if above else value >= low) and value <= high:  # NaN fails both
            continue
        if ssh_config and key in SSH_KEYWORDS:
            raise OrchError(
                f"{where}: {SSH_KEYWORDS[key]}: expected {expected}, got {value:g}",
                ExitCode.CONFIG,
                hint=f"fix the {SSH_KEYWORDS[key]} line for this host in the SSH config file: {hint}",
            )
        raise OrchError(f"{where}: key {key!r}: expected {expected}, got {value:g}", ExitCode.CONFIG, hint=hint)
    if host.proxy_command and not is_none(host.proxy_jump):
        raise OrchError(
            f"{where}: both proxy_jump and proxy_command are set",
            ExitCode.CONFIG,
            hint="keep one: proxy_jump (orch connects through each hop, verifying its host key) "
            "or proxy_command (a local command carries the connection)",
        )
    for key in _NO_CONTROL:
        value = getattr(host, key)
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            bad = control_char(str(item))
            if bad:
                at = f"{key}[{i}]" if isinstance(value, list) else key
                raise OrchError(
                    f"{where}: key {at!r}: contains a control character ({bad}): {str(item)!r}",
                    ExitCode.CONFIG,
                    hint=f"write {at} without newlines, tabs or other control "
                    "characters (a host path must be one plain line)",
                )


def _state_dir(project: Project) -> Path:
    return project.root / ".orch" / "hosts"


def host_file(project: Project, name: str) -> Path:
    if name == LOCAL:
        return _state_dir(project) / "local.yaml"
    return project.configs / "hosts" / f"{name}.yaml"


def _from_file(path: Path, name: str, defaults: Optional[Dict] = None, cache: Optional[Path] = None) -> HostConfig:
    """The host config in PATH.  CACHE: a JSON file that keeps the result for the file's
    exact text, so that the next command (`orch status` above all) skips YAML and the
    spec builder while the file is unchanged."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        text = None  # read_mapping says why
    key = {"file": str(path), "text": text, "defaults": defaults or {}}
    if cache is not None and text is not None:
        found = _cached(cache, key, name, path)
        if found is not None:
            return _tokens_expanded(found)
    from orchestrator.config.yamlfile import read_mapping
    from remote.spec import SpecError, build

    raw = dict(defaults or {})
    raw.update(read_mapping(path, text=text))
    try:
        base = build(HostFile, raw, str(path))
    except SpecError as exc:
        raise OrchError(str(exc), ExitCode.CONFIG) from None
    if name != LOCAL and not base.hostname:
        raise OrchError(f"{path}: key 'hostname': required (the host's DNS name or address)", ExitCode.CONFIG)
    check_values(base, str(path))
    if cache is not None and text is not None:
        _keep(cache, key, base)
    # Field by field, not asdict(): that would turn the nested `slurm` options into a dict.
    return _tokens_expanded(
        HostConfig(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)}, name=name, source=str(path))
    )


def _tokens_expanded(host: HostConfig) -> HostConfig:
    """A host file's HOST with its proxy_command's %-tokens expanded (an SSH config alias's
    come expanded by Paramiko)."""
    if host.proxy_command:
        host.proxy_command = "" if is_none(host.proxy_command) else expand_proxy_command(host)
    return host


def _cache_file(project: Project, name: str) -> Path:
    return _state_dir(project) / f"{name}.config.json"  # beside <host>.launch.json (runs/hostlaunch.py)


def _cached(cache: Path, key: Dict, name: str, path: Path) -> Optional[HostConfig]:
    """The config CACHE keeps for KEY (the file, its text, the defaults), checked again as a
    file's values are; None when there is none, or it is for other text or other fields."""
    try:
        doc = json.loads(cache.read_text())
        if not isinstance(doc, dict) or doc.get("key") != key:
            return None
        values = dict(doc["host"])
        if set(values) != {f.name for f in dataclasses.fields(HostFile)}:
            return None  # written by another version of HostFile
        values["slurm"] = SlurmOptions(**values["slurm"])
        host = HostConfig(**values, name=name, source=str(path))
        check_values(host, str(path))
    except (OSError, ValueError, TypeError, KeyError, OrchError):
        return None
    return host


def _keep(cache: Path, key: Dict, base: HostFile) -> None:
    from orchestrator.localfiles import atomic_write_text

    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache, json.dumps({"key": key, "host": dataclasses.asdict(base)}, indent=1) + "\n")
    except (OSError, OrchError):  # OrchError: the write was refused (orchestrator/localfiles.py)
        pass  # only a cache: a read-only project parses the YAML every time


def ssh_config_path() -> Path:
    return Path(os.environ.get("ORCH_SSH_CONFIG", "~/.ssh/config")).expanduser()


def _ssh_aliases() -> List[str]:
    from orchestrator.config.sshconfig import ssh_config_hosts

    path = ssh_config_path()
    if not path.is_file():
        return []
    return sorted({h for h in ssh_config_hosts(path) if not any(c in h for c in "*?!")})


# ssh(1)'s time format (misc.c, convtime): numbers each with a unit, s m h d w (either case),
# added up, the last one's unit optional (seconds): 90, 90s, 1h30m, 1h30.  At most 9 digits
# each (int() refuses over 4300, and check_values the rest).
_SSH_TIME = re.compile(r"(?:[0-9]{1,9}[sSmMhHdDwW])*[0-9]{0,9}")
_SSH_TIME_PART = re.compile(r"([0-9]{1,9})([sSmMhHdDwW]?)")
_SSH_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _ssh_number(entry: Dict, key: str, default: float, where: str) -> float:
    """An OpenSSH keyword's value as ssh(1) would read it: a time for ConnectTimeout and
    ServerAliveInterval (ssh's units; ConnectTimeout also takes a fraction, as orch always
    has), an integer for Port and ServerAliveCountMax; or one message naming the file, the
    host and the keyword."""
    if key.lower() not in entry:
        return default
    text = str(entry[key.lower()]).strip()
    time = key in ("ConnectTimeout", "ServerAliveInterval")
    if time and text and _SSH_TIME.fullmatch(text):
        return sum(int(n) * _SSH_UNITS[unit.lower()] for n, unit in _SSH_TIME_PART.findall(text))
    try:
        if key == "ConnectTimeout":
            return float(text)
        if not time:
            return int(text)
    except ValueError:
        pass
    shown = repr(text) if len(text) <= 60 else f"{text[:40]!r}... ({len(text)} characters)"
    raise OrchError(
        f"{where}: {key} {shown} is not {'a time' if time else 'a number'}",
        ExitCode.CONFIG,
        hint=f"fix the {key} line for this host in the SSH config file"
        + (": seconds, or a time in ssh's units s, m, h, d, w (e.g. 30, 2m, 1h30m)" if time else ""),
    )


def is_none(value: Optional[str]) -> bool:
    """An empty ProxyJump/ProxyCommand value, or OpenSSH's explicit ``none``."""
    return not value or not value.strip() or value.strip().lower() == "none"


def expand_proxy_command(host: HostConfig) -> str:
    """HOST's proxy_command with OpenSSH's tokens: %h hostname, %p port, %r user, %n the name
    as given, %% a percent sign."""
    values = {"h": host.hostname, "p": str(host.port), "r": host.user or getpass.getuser(), "n": host.name, "%": "%"}

    def token(found: "re.Match[str]") -> str:
        if found.group(1) not in values:
            raise OrchError(
                f"{host.source or host.name}: proxy_command {host.proxy_command!r}: unknown token %{found.group(1)}",
                ExitCode.CONFIG,
                hint="tokens are %h (hostname), %p (port), %r (user), %n (host name as given), %% (a percent sign)",
            )
        return values[found.group(1)]

    return re.sub(r"%(.?)", token, host.proxy_command, flags=re.DOTALL)


def _from_ssh_config(name: str) -> Optional[HostConfig]:
    from orchestrator.config.sshconfig import ssh_config_entry

    if name not in _ssh_aliases():
        return None
    where = f"{ssh_config_path()} (Host {name})"
    entry = ssh_config_entry(ssh_config_path(), name)
    identity = entry.get("identityfile") or [""]
    host = HostConfig(
        name=name,
        source=str(ssh_config_path()),
        hostname=entry.get("hostname", name),
        port=int(_ssh_number(entry, "Port", 22, where)),
        user=entry.get("user", ""),
        identity_file=identity[0],
        known_hosts_file=(entry.get("userknownhostsfile") or "~/.ssh/known_hosts").split()[0],
        proxy_jump=entry.get("proxyjump", ""),
        # Paramiko has expanded its %-tokens already.  ssh(1) takes the first of ProxyJump
        # and ProxyCommand it reads; Paramiko cannot say which came first: ProxyJump wins.
        proxy_command="" if entry.get("proxyjump") or is_none(entry.get("proxycommand")) else entry["proxycommand"],
        connect_timeout=_ssh_number(entry, "ConnectTimeout", 10, where),
        # ssh(1) sends no keepalive unless ServerAliveInterval is set; orch's own default
        # (HostConfig.keepalive) stays where the alias says nothing, so a dead peer is noticed.
        keepalive=int(_ssh_number(entry, "ServerAliveInterval", HostConfig.keepalive, where)),
        # ssh's ServerAliveCountMax 0 gives up at the first silent interval, before any probe:
        # orch's probes are what keep a quiet host (`logs -f` on a quiet job) alive, so 0 is
        # read as orch's least, 1 (README, "Hosts").
        keepalive_count=int(_ssh_number(entry, "ServerAliveCountMax", HostConfig.keepalive_count, where)) or 1,
    )
    check_values(host, where, ssh_config=True)
    return host


def resolve_host(project: Project, name: str) -> HostConfig:
    check_name("host", name)
    if name == LOCAL:
        path = host_file(project, LOCAL)
        # Built-in: everything under the project's .orch/local unless overridden.
        defaults = {"workdir": str(project.root / ".orch" / "local"), "python": sys.executable}
        if path.is_file():
            return _from_file(path, LOCAL, defaults, _cache_file(project, LOCAL))
        # The controller's own interpreter: `pip install -e .[host]` puts torch beside it.
        return HostConfig(name=LOCAL, source="built-in", workdir=defaults["workdir"], python=sys.executable)
    path = host_file(project, name)
    if path.is_file():
        return _from_file(path, name, cache=_cache_file(project, name))
    alias = _from_ssh_config(name)
    if alias is not None:
        return alias
    raise OrchError(
        f"unknown host {name!r}: no {path.relative_to(project.root)} and no `Host {name}` in {ssh_config_path()}",
        ExitCode.CONFIG,
        hint="`orch hosts list` shows the known hosts; add configs/hosts/NAME.yaml with at least `hostname:`",
    )


def list_hosts(project: Project) -> List[HostConfig]:
    hosts = [resolve_host(project, LOCAL)]
    folder = project.configs / "hosts"
    names = set()
    if folder.is_dir():
        for path in sorted(folder.glob("*.yaml")):
            names.add(path.stem)
            try:
                hosts.append(_from_file(path, path.stem))
            except OrchError as exc:  # one broken file must not hide the other hosts
                hosts.append(HostConfig(name=path.stem, source=str(path), description=f"INVALID: {exc.message}"))
    for alias in _ssh_aliases():
        if alias not in names and alias != LOCAL:
            entry = _from_ssh_config(alias)
            if entry is not None:
                hosts.append(entry)
    return hosts


def host_yaml(host: HostConfig, **extra) -> str:
    """A configs/hosts/NAME.yaml body for HOST: its connection values that differ from a
    host file's defaults (hostname always), then EXTRA; quoted by YAML itself."""
    defaults = HostFile()
    data = {"hostname": host.hostname}
    for key in ("port", "user", "identity_file", "known_hosts_file", "proxy_jump", "proxy_command", "connect_timeout"):
        if getattr(host, key) != getattr(defaults, key):
            data[key] = getattr(host, key)
    if "proxy_command" in data:  # expanded already: a % in it is a percent sign
        data["proxy_command"] = data["proxy_command"].replace("%", "%%")
    data.update(extra)
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def set_host_key(project: Project, name: str, key: str, value) -> Path:
    """Rewrite one key of a host's YAML file (for `local`, its file under .orch/)."""
    if key not in {f.name for f in dataclasses.fields(HostFile)}:
        raise OrchError(f"unknown host key {key!r}", ExitCode.CONFIG)
    path = host_file(project, name)
    if not path.is_file() and name != LOCAL:
        rel = path.relative_to(project.root)
        alias = _from_ssh_config(name)
        if alias is None:
            hint = f"create {rel} with at least `hostname:` and `{key}:`"
        else:
            # A host file does not read ~/.ssh/config, so `hostname: ALIAS` would not
            # resolve: the file needs the values the alias stands for.
            hint = f"create {rel} with what {ssh_config_path()} resolves `{name}` to:\n" + host_yaml(
                alias, **{key: value}
            ).rstrip("\n")
        raise OrchError(f"host {name!r} has no file {rel} to record {key} in", ExitCode.CONFIG, hint=hint)
    import yaml

    from orchestrator.config.yamlfile import read_mapping
    from orchestrator.localfiles import atomic_write_text

    data = read_mapping(path) if path.is_file() else {}
    data[key] = value
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
    return path
