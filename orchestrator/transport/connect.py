"""Open the one transport a CLI command uses."""

from __future__ import annotations

import contextlib
from typing import Iterator

from orchestrator.config.hosts import resolve_host
from orchestrator.config.project import Project
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
