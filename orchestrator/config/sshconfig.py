"""The user's SSH config files, read by Paramiko, and Paramiko imported without Invoke.

Paramiko's config module imports Invoke as it loads, for one feature: ``Match exec`` lines
in an SSH config file, which run a command.  That import is ~0.13 s of CPU (Invoke pulls in
asyncio, unittest.mock and a vendored YAML), a quarter of a whole `orch status`, on every
command whether or not any config file has such a line.  So orch imports Paramiko with
Invoke hidden, and hands Invoke back only when a config file it reads has ``Match ... exec``
(read_ssh_config), where Paramiko then runs the command as ssh(1) would.

Every module of orch imports Paramiko from here (`from orchestrator.config.sshconfig import
paramiko`), so which of them comes first does not matter.  It sits in config/, the lowest
package that reads SSH config files, so that transport/ can import it too.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Dict, List

from orchestrator.errors import ExitCode, OrchError


def _import_paramiko():
    if "paramiko" in sys.modules:
        return sys.modules["paramiko"]
    hide = "invoke" not in sys.modules
    if hide:
        sys.modules["invoke"] = None  # `import invoke` raises ImportError while this is set
    try:
        import paramiko
    finally:
        if hide and sys.modules.get("invoke", 0) is None:
            del sys.modules["invoke"]
    return paramiko


paramiko = _import_paramiko()

_MATCH_EXEC = re.compile(r"^\s*match\b.*\bexec\b", re.IGNORECASE | re.MULTILINE)
_HOST_LINE = re.compile(r"^\s*host(?:\s*=\s*|\s+)(.*)$", re.IGNORECASE | re.MULTILINE)


def _unreadable(path: Path, exc: Exception) -> OrchError:
    return OrchError(
        f"{path}: cannot read this SSH config file: {exc}",
        ExitCode.CONFIG,
        hint="fix that line (`ssh -G HOST` shows how ssh reads the file), or point ORCH_SSH_CONFIG at another file",
    )


def read_ssh_config(path: Path) -> "paramiko.SSHConfig":
    """PATH parsed by Paramiko, with ``Match exec`` working when the file uses it."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise _unreadable(path, exc) from None
    config_module = sys.modules["paramiko.config"]
    if config_module.invoke is None and _MATCH_EXEC.search(text):
        try:
            import invoke
        except ImportError:
            pass  # Paramiko then raises its own ImportError at the Match line, as without orch
        else:
            config_module.invoke = invoke
    try:
        return paramiko.SSHConfig.from_text(text)
    except (paramiko.ssh_exception.ConfigParseError, ValueError) as exc:
        raise _unreadable(path, exc) from None


def ssh_config_entry(path: Path, name: str) -> Dict:
    """What PATH says for host NAME (Paramiko's lookup: lower-case keys, Match blocks applied)."""
    config = read_ssh_config(path)
    try:
        return config.lookup(name)
    except (paramiko.ssh_exception.ConfigParseError, paramiko.ssh_exception.CouldNotCanonicalize, ValueError) as exc:
        raise _unreadable(path, exc) from None


def ssh_config_hosts(path: Path) -> List[str]:
    """The patterns on PATH's ``Host`` lines.

    Not Paramiko's SSHConfig.get_hostnames(), which raises KeyError on any file that also
    has a ``Match`` block."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise _unreadable(path, exc) from None
    names: List[str] = []
    for value in _HOST_LINE.findall(text):
        try:
            names += shlex.split(value, comments=True)
        except ValueError:  # an unbalanced quote: ssh(1) refuses the file; take the words
            names += value.split()
    return names
