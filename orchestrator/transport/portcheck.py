"""Say what answered on a port that did not behave like an SSH server.

Paramiko reports a web server, a database or a silent listener on the configured port as
"Error reading SSH protocol banner" (or, later, "No existing session"). Only when that
happens, one more short connection looks at what the port sends, so the user reads
"127.0.0.1:8080 answered but is not an SSH server (it sent 'HTTP/1.1 400 Bad Request')"
instead of a library's words. Connection failures get the operating system's reason in
words, not "[Errno None] Unable to connect to port 1".
"""

from __future__ import annotations

import socket
from typing import Iterable

PROBE_S = 2.0  # the first attempt already waited connect_timeout: this only looks again
# What an SSH client sends first anyway; it also makes servers that wait for a request
# (HTTP, SMTP-like) answer with their own greeting or an error.
CLIENT_HELLO = b"SSH-2.0-orch_portcheck\r\n"


def banner_failure(exc: BaseException) -> bool:
    text = str(exc)
    return "protocol banner" in text or "No existing session" in text


def _shown(data: bytes) -> str:
    line = data.splitlines()[0] if data.strip() else data
    text = line.decode("utf-8", errors="replace").strip()
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text[:60] + ("..." if len(text) > 60 else "")


def describe_non_ssh(hostname: str, port: int, waited_s: float, address: str) -> str:
    """One line naming what is on ``hostname:port`` ("" when it looks like SSH after all)."""
    try:
        sock = socket.create_connection((hostname, port), timeout=PROBE_S)
    except OSError as exc:
        return f"{address} did not complete the SSH handshake and now refuses connections ({os_reason(exc, port)})"
    data = b""
    try:
        sock.settimeout(PROBE_S)
        try:
            sock.sendall(CLIENT_HELLO)
        except OSError:
            pass
        try:
            while len(data) < 200 and b"\n" not in data:
                chunk = sock.recv(200)
                if not chunk:
                    break
                data += chunk
        except (socket.timeout, OSError):
            pass
    finally:
        sock.close()
    if data.startswith(b"SSH-"):
        return ""
    if data:
        return f"{address} answered but is not an SSH server (it sent {_shown(data)!r})"
    return f"{address} accepted the connection but sent no SSH banner within {waited_s:.0f} s"


def os_reason(exc: BaseException, port: int) -> str:
    """An OSError (or Paramiko's NoValidConnectionsError) in words."""
    errors: Iterable[BaseException] = getattr(exc, "errors", {}).values() or [exc]
    reasons = []
    for err in errors:
        if isinstance(err, ConnectionRefusedError):
            reason = f"connection refused: nothing listens on port {port}"
        elif isinstance(err, socket.gaierror):
            reason = f"the name does not resolve ({err.strerror or err})"
        elif isinstance(err, (socket.timeout, TimeoutError)):
            reason = "no answer (timed out)"
        elif isinstance(err, OSError) and err.strerror:
            reason = err.strerror[0].lower() + err.strerror[1:]
        else:
            reason = str(err)
        if reason not in reasons:
            reasons.append(reason)
    return "; ".join(reasons)
