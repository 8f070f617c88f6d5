"""Open the one transport a CLI command uses, and check the host has what orch needs."""

from __future__ import annotations

import contextlib
from typing import Iterator

from orchestrator.config.hosts import resolve_host
from orchestrator.config.project import Project
from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport import shell
from orchestrator.transport.base import LocalTransport, Transport


@contextlib.contextmanager
def open_transport(project: Project, host_name: str, trust_new_host_key: bool = False) -> Iterator[Transport]:
    host = resolve_host(project, host_name)
    if host.is_local:
        transport: Transport = LocalTransport(host)
    else:
        from orchestrator.transport.ssh import SSHTransport

        transport = SSHTransport(host, trust_new_host_key=trust_new_host_key)
    try:
        yield transport
    finally:
        transport.close()


def require_tools(transport: Transport, tools=("tmux",)) -> None:
    """Fail early, with a specific message, when the host lacks a tool orch drives."""
    checks = " ; ".join(f"command -v {shell.quote(t)} >/dev/null 2>&1 || echo missing:{shell.quote(t)}" for t in tools)
    out = transport.run(checks).stdout.split()
    missing = [w.split(":", 1)[1] for w in out if w.startswith("missing:")]
    if missing:
        raise OrchError(
            f"{transport.host.name} lacks {', '.join(missing)}",
            ExitCode.HOST_TOOLS,
            hint="install it there (e.g. `sudo apt-get install -y " + " ".join(missing) + "`) or run `orch bootstrap`",
        )
