"""The user's SSH config files, read by Paramiko, and Paramiko imported without Invoke.

Paramiko's config module imports Invoke as it loads, for one feature: ``Match exec`` lines
in an SSH config file, which run a command.  That import is ~0.13 s of CPU (Invoke pulls in
asyncio, unittest.mock and a vendored YAML), a quarter of a whole `orch status`, on every
command whether or not any config file has such a line.  So orch imports Paramiko with
Invoke hidden, and hands Invoke back only when a config file it reads has ``Match ... exec``
(read_ssh_config), where Paramiko then runs the command as ssh(1) would.

Paramiko does not follow ``Include`` lines; config_text does, as ssh(1) does, so hosts kept
in ~/.ssh/config.d/* are found.

Every module of orch imports Paramiko from here (`from orchestrator.config.sshconfig import
paramiko`), so which of them comes first does not matter.  It sits in config/, the lowest
package that reads SSH config files, so that transport/ can import it too.
"""

from __future__ import annotations

import glob
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
_BLOCK_LINE = re.compile(r"^\s*(?:host|match)(?:\s*=\s*|\s+)", re.IGNORECASE)
_INCLUDE_LINE = re.compile(r"^\s*include(?:\s*=\s*|\s+)(.*)$", re.IGNORECASE)
MAX_INCLUDE_DEPTH = 16  # OpenSSH's limit (READCONF_MAX_DEPTH): deeper is a loop


def _unreadable(path: Path, exc: object) -> OrchError:
    return OrchError(
        f"{path}: cannot read this SSH config file: {exc}",
        ExitCode.CONFIG,
        hint="fix that line (`ssh -G HOST` shows how ssh reads the file), or point ORCH_SSH_CONFIG at another file",
    )


def _words(value: str) -> List[str]:
    try:
        return shlex.split(value, comments=True)
    except ValueError:  # an unbalanced quote: ssh(1) refuses the file; take the words
        return value.split()


def _included(pattern: str) -> List[Path]:
    """The files an Include word names, as ssh(1) finds them: ~ expanded, a relative path
    under ~/.ssh, wildcards in lexical order, a name that matches nothing skipped."""
    path = Path(pattern).expanduser()
    if not path.is_absolute():
        path = Path.home() / ".ssh" / path
    if not glob.has_magic(str(path)):
        return [path] if path.is_file() else []
    return [Path(p) for p in sorted(glob.glob(str(path))) if Path(p).is_file()]


def config_text(path: Path, depth: int = 0) -> str:
    """PATH's text with its ``Include`` lines replaced by the files they name.

    Paramiko does not read Include (it keeps it as an unknown option), so hosts defined in
    ~/.ssh/config.d/* were invisible to orch while ssh(1) found them.  An included file is
    read where its Include line stands, as ssh(1) reads it; the enclosing Host or Match line
    is repeated after it (``Host *`` at the top level), so the lines that follow stay in
    their own block, not the included file's last one."""
    if depth > MAX_INCLUDE_DEPTH:
        raise _unreadable(path, f"Include nested more than {MAX_INCLUDE_DEPTH} deep (a file that includes itself?)")
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise _unreadable(path, exc.strerror or exc) from None
    if "include" not in text.lower():
        return text
    out: List[str] = []
    block = "Host *"
    for line in text.splitlines():
        if _BLOCK_LINE.match(line):
            block = line.strip()
        found = _INCLUDE_LINE.match(line)
        if not found:
            out.append(line)
            continue
        for word in _words(found.group(1)):
            for included in _included(word):
                out.append(config_text(included, depth + 1))
                out.append(block)
    return "\n".join(out) + "\n"


def read_ssh_config(path: Path) -> "paramiko.SSHConfig":
    """PATH parsed by Paramiko, its Include lines followed (config_text), with ``Match
    exec`` working when the files use it."""
    text = config_text(path)
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
    """The patterns on the ``Host`` lines of PATH and the files it includes.

    Not Paramiko's SSHConfig.get_hostnames(), which raises KeyError on any file that also
    has a ``Match`` block."""
    names: List[str] = []
    for value in _HOST_LINE.findall(config_text(path)):
        names += _words(value)
    return names
