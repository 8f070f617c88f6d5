"""ProxyJump as ssh(1) reads it: a chain of hops, each a host of its own.

``ProxyJump a,b`` means: connect to ``a``, through it to ``b``, through that to the host.
Each hop is ``[user@]host[:port]`` (or ``ssh://[user@]host[:port]``) and, as in ssh, is
looked up in ~/.ssh/config with its own settings (HostName, Port, User, IdentityFile,
UserKnownHostsFile).  ``none`` means no jump, as ``ProxyJump none`` in ~/.ssh/config
does.  Only the first hop's own ProxyJump applies (ssh runs the rest with ``-J``), so
a chain grows only at its start; a loop is refused.

Where ~/.ssh/config says nothing about a hop, orch uses the target's user, identity
file and known_hosts file (ssh would use its defaults: the local user name and
~/.ssh/id_*) - a bastion usually takes the same key, and this keeps one host file
enough to describe the whole route.
"""

from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Tuple

from orchestrator.config.hosts import HostConfig, is_none, ssh_config_path
from orchestrator.errors import ExitCode, OrchError

MAX_HOPS = 8


def parse_hop(spec: str) -> Tuple[str, str, Optional[int]]:
    """``[ssh://][user@]host[:port]`` -> (user, host, port or None); raises ValueError."""
    text = spec.strip()
    if text.startswith("ssh://"):
        text = text[len("ssh://") :].rstrip("/")
    user, _, rest = text.rpartition("@")
    if rest.startswith("["):  # [v6 address]:port
        host, sep, tail = rest[1:].partition("]")
        if not sep or (tail and not tail.startswith(":")):
            raise ValueError("unbalanced [ ] around an address")
        port_text = tail[1:]
    else:
        host, _, port_text = rest.partition(":")
    if not host or any(c.isspace() for c in host):
        raise ValueError("no host name")
    port = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    return user, host, port


def _ssh_config_entry(name: str) -> dict:
    path = ssh_config_path()
    if not path.is_file():
        return {}
    from orchestrator.config.sshconfig import ssh_config_entry

    return ssh_config_entry(path, name)


def _hop(spec: str, target: HostConfig, where: str) -> Tuple[HostConfig, str]:
    """One hop as a host; also returns that hop's own ProxyJump from ~/.ssh/config."""
    try:
        user, name, port = parse_hop(spec)
    except ValueError as exc:
        raise OrchError(
            f"{where}: proxy_jump hop {spec!r}: {exc}",
            ExitCode.CONFIG,
            hint="each hop is [user@]host[:port], hops separated by commas",
        ) from None
    entry = _ssh_config_entry(name)
    identity = (entry.get("identityfile") or [""])[0]
    known = (entry.get("userknownhostsfile") or "").split()
    try:
        port = port or int(entry.get("port", 22))
    except ValueError:
        raise OrchError(f"{ssh_config_path()}: Port of {name!r} is not a number", ExitCode.CONFIG) from None
    hop = replace(
        target,
        name=name,
        source=f"proxy_jump of {target.name}",
        hostname=entry.get("hostname", name),
        port=port,
        user=user or entry.get("user", "") or target.user,
        identity_file=identity or target.identity_file,
        known_hosts_file=known[0] if known else target.known_hosts_file,
        proxy_jump="",
    )
    return hop, entry.get("proxyjump", "")


def chain(host: HostConfig) -> List[HostConfig]:
    """The hops to go through, first to last (empty: connect directly)."""
    where = host.source or host.name
    hops: List[HostConfig] = []
    spec = host.proxy_jump
    seen: List[str] = []
    while not is_none(spec):
        if spec in seen:
            raise OrchError(
                f"{where}: ProxyJump loops ({' -> '.join(seen + [spec])})",
                ExitCode.CONFIG,
                hint="a jump host's own ProxyJump leads back to itself; set `ProxyJump none` for it in ~/.ssh/config",
            )
        seen.append(spec)
        parts = [p for p in spec.split(",")]
        if any(not p.strip() for p in parts):
            raise OrchError(
                f"{where}: proxy_jump {spec!r} has an empty hop",
                ExitCode.CONFIG,
                hint="hops are [user@]host[:port], separated by commas",
            )
        resolved = [_hop(p, host, where) for p in parts]
        hops = [h for h, _ in resolved] + hops
        if len(hops) > MAX_HOPS:
            raise OrchError(f"{where}: ProxyJump chain longer than {MAX_HOPS} hops", ExitCode.CONFIG)
        spec = resolved[0][1]  # the first hop's own ProxyJump, from ~/.ssh/config
    return hops
