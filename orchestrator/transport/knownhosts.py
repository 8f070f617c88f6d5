"""Read an OpenSSH known_hosts file and decide a host key the way ssh(1) does.

Paramiko's HostKeys only matches literal names: a wildcard line (``[10.0.0.*]:2222``),
a negation (``!bastion``) or ``?`` never matched, so a key that ssh(1) calls CHANGED was
"unknown" to orch and ``--trust-new-host-key`` recorded it.  Here every line is matched
as OpenSSH's match_hostname()/match_pattern_list() match it, and the offered key is
checked against every matching line (``check``):

  - a matching line holds the offered key               -> ok
  - lines match but none holds the offered key          -> changed (refused, always)
  - no line matches                                     -> unknown
  - the key is listed ``@revoked`` (for any host)       -> revoked (refused, always)

As in OpenSSH, ``@cert-authority`` lines are skipped (orch does not verify host
certificates: such a host is unknown until its own key is trusted) and a malformed line
is skipped, not fatal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Set, Tuple

# OpenSSH's limit on one sub-pattern of a list (match.c); a longer one never matches.
_MAX_SUBPATTERN = 1024


def match_pattern(string: str, pattern: str) -> bool:
    """OpenSSH match_pattern(): ``*`` any run of characters, ``?`` exactly one; nothing
    else is special (``[`` is literal: it is how ``[host]:port`` is written)."""
    s, p = 0, 0
    star_p, star_s = -1, 0
    while s < len(string):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == string[s]) and pattern[p] != "*":
            s, p = s + 1, p + 1
        elif p < len(pattern) and pattern[p] == "*":
            star_p, star_s = p, s
            p += 1
        elif star_p >= 0:  # backtrack: let the last * take one more character
            star_s += 1
            s, p = star_s, star_p + 1
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def match_pattern_list(string: str, patterns: str, dolower: bool = True) -> int:
    """OpenSSH match_pattern_list(): 1 if some sub-pattern matches, -1 if a negated one
    (``!pat``) matches - a negation wins over any positive match - else 0."""
    got_positive = 0
    for sub in patterns.split(","):
        negated = sub.startswith("!")
        if negated:
            sub = sub[1:]
        if len(sub) >= _MAX_SUBPATTERN:
            return 0
        if dolower:
            sub = sub.lower()
        if match_pattern(string, sub):
            if negated:
                return -1
            got_positive = 1
    return got_positive


def match_hostname(host: str, patterns: str) -> int:
    """OpenSSH match_hostname(): the host name is compared in lower case."""
    return match_pattern_list(host.lower(), patterns, dolower=True)


def hash_host(host: str, salt: bytes) -> str:
    """The ``|1|salt|hash`` form ssh-keygen -H writes (HMAC-SHA1 of the name, keyed by salt)."""
    digest = hmac.new(salt, host.encode(), hashlib.sha1).digest()
    return "|1|" + base64.b64encode(salt).decode() + "|" + base64.b64encode(digest).decode()


def match_hashed(host: str, field_: str) -> bool:
    parts = field_.split("|")
    if len(parts) != 4 or parts[0] != "" or parts[1] != "1":
        return False
    try:
        salt = base64.b64decode(parts[2], validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hash_host(host, salt), field_)


def host_key_name(hostname: str, port: int) -> str:
    """The name ssh(1) looks up: ``host`` on port 22, else ``[host]:port``."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass
class Entry:
    line: int  # 1-based line number in the file
    hosts: str  # the host field as written: a pattern list or one hashed name
    key_type: str
    blob: bytes  # the decoded public key

    @property
    def hashed(self) -> bool:
        return self.hosts.startswith("|")

    def matches(self, name: str) -> bool:
        if self.hashed:
            return match_hashed(name.lower(), self.hosts)
        return match_hostname(name, self.hosts) == 1

    def describe(self) -> str:
        return f"line {self.line}: {self.key_type} {fingerprint(self.blob)}"


@dataclass
class Verdict:
    status: str  # ok | changed | unknown | revoked
    matching: List[Entry] = field(default_factory=list)  # the lines that name this host


def _key_blob(key_type: str, b64: str) -> Optional[bytes]:
    """The decoded key, or None when it is not valid base64 or not of the type it claims
    (ssh(1) skips such a line)."""
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(blob) < 4:
        return None
    (n,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + n] != key_type.encode():
        return None
    return blob


@dataclass
class KnownHosts:
    path: Optional[Path] = None
    entries: List[Entry] = field(default_factory=list)
    revoked: Set[bytes] = field(default_factory=set)  # key blobs
    cert_authorities: int = 0
    skipped: int = 0

    def is_revoked(self, key) -> bool:
        return key.asbytes() in self.revoked

    def matching(self, name: str) -> List[Entry]:
        return [e for e in self.entries if e.matches(name)]

    def check(self, name: str, key) -> Verdict:
        """Decide the key ``key`` (a paramiko PKey) offered by host ``name``."""
        blob = key.asbytes()
        if blob in self.revoked:
            return Verdict("revoked")
        matching = self.matching(name)
        if any(e.blob == blob for e in matching):
            return Verdict("ok", matching)
        return Verdict("changed" if matching else "unknown", matching)

    def key_types(self, name: str) -> List[str]:
        """Key types known for ``name``, in file order: asked for first, as ssh(1) does,
        so a host with several keys offers the one we can check."""
        out: List[str] = []
        for e in self.matching(name):
            if e.key_type not in out:
                out.append(e.key_type)
        return out


def parse(text: str, path: Optional[Path] = None) -> KnownHosts:
    known = KnownHosts(path=path)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if fields[0].startswith("@"):
            marker, fields = fields[0], fields[1:]
            if marker == "@revoked" and len(fields) >= 3:
                blob = _key_blob(fields[1], fields[2])
                if blob is not None:
                    known.revoked.add(blob)
                else:
                    known.skipped += 1
            elif marker == "@cert-authority":
                known.cert_authorities += 1
            else:
                known.skipped += 1
            continue
        if len(fields) < 3:
            known.skipped += 1
            continue
        blob = _key_blob(fields[1], fields[2])
        if blob is None:
            known.skipped += 1
            continue
        known.entries.append(Entry(number, fields[0], fields[1], blob))
    return known


def load(path: Path) -> KnownHosts:
    if not path.is_file():
        return KnownHosts(path=path)
    return parse(path.read_text(errors="replace"), path)


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


def preferred_key_types(known_types: List[str], offered: Tuple[str, ...]) -> List[str]:
    """The client's host-key algorithm list with the known types first (an ssh-rsa key
    is asked for by its SHA-2 signature names, as paramiko and ssh(1) do)."""
    first: List[str] = []
    for t in known_types:
        names = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if t == "ssh-rsa" else [t]
        first += [n for n in names if n in offered and n not in first]
    return first + [t for t in offered if t not in first]
