"""Read an OpenSSH known_hosts file the way ssh(1) does, for Paramiko.

Paramiko's own loader raises on lines it does not understand, so one ``@cert-authority``
or ``@revoked`` line (common where hosts carry certificates) made every orch command
crash.  Here, as in OpenSSH:
  - ``@revoked`` keys are collected and must be refused for every host;
  - ``@cert-authority`` lines are skipped (orch does not verify host certificates: such a
    host is unknown to orch until its own key is trusted);
  - a malformed line is skipped, not fatal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Set, Tuple

import paramiko
from paramiko.hostkeys import HostKeyEntry


@dataclass
class KnownHosts:
    keys: paramiko.HostKeys = field(default_factory=paramiko.HostKeys)
    revoked: Set[Tuple[str, str]] = field(default_factory=set)  # (key type, base64)
    cert_authorities: int = 0
    skipped: int = 0

    def is_revoked(self, key: paramiko.PKey) -> bool:
        return (key.get_name(), key.get_base64()) in self.revoked


def load(path: Path, keys: Optional[paramiko.HostKeys] = None) -> KnownHosts:
    """Parse ``path``; its usable entries go into ``keys`` (e.g. a client's own HostKeys)."""
    known = KnownHosts(keys=keys if keys is not None else paramiko.HostKeys())
    if not path.is_file():
        return known
    for raw in path.read_text(errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            marker, _, rest = line.partition(" ")
            if marker == "@revoked":
                parts = rest.split()
                if len(parts) >= 3:
                    known.revoked.add((parts[1], parts[2]))
            elif marker == "@cert-authority":
                known.cert_authorities += 1
            else:
                known.skipped += 1
            continue
        try:
            entry = HostKeyEntry.from_line(line)
        except Exception:  # InvalidHostKey, bad base64, unknown key type: ssh(1) skips these too
            entry = None
        if entry is None or entry.key is None:
            known.skipped += 1
            continue
        for name in entry.hostnames:
            known.keys.add(name, entry.key.get_name(), entry.key)
    return known


def append(path: Path, line: str) -> None:
    """Add one entry at the end, never gluing it onto a last line without a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = ""
    if path.is_file() and path.stat().st_size > 0:
        with open(path, "rb") as fh:
            fh.seek(-1, 2)
            if fh.read(1) != b"\n":
                prefix = "\n"
    with open(path, "a") as fh:
        fh.write(prefix + line.rstrip("\n") + "\n")
