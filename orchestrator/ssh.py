"""The SSH transport: one verified Paramiko connection per CLI command.

Commands, SFTP and rsync (through orchestrator/rsync_bridge.py) all ride that one
connection.  Many tools accept any host key (AutoAddPolicy, StrictHostKeyChecking=no).
We load the user's known_hosts and refuse unknown keys unless the user explicitly
trusts a new one; a changed key is always refused (paramiko raises BadHostKeyException
before any policy is consulted).
"""
from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path
from typing import List, Optional

import paramiko

from . import knownhosts, portcheck, shell
from .errors import ExitCode, OrchError
from .hosts import HostConfig
from .transport import Result, Transport

# Paramiko logs failures from its transport thread (with tracebacks) through `logging`;
# with no handler configured, Python prints them on stderr ahead of orch's own message.
# Every failure reaches the user as one OrchError instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class _Refuse(paramiko.MissingHostKeyPolicy):
    """Refuse an unknown key, keeping it so the refusal can show its fingerprint."""

    def __init__(self):
        self.key: Optional[paramiko.PKey] = None

    def missing_host_key(self, client, hostname, key):
        self.key = key
        raise paramiko.SSHException(f"Server {hostname!r} not found in known_hosts")


class _TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Record an unknown key in known_hosts: only used with --trust-new-host-key."""

    def __init__(self, known_hosts: Path, known: knownhosts.KnownHosts):
        self.known_hosts = known_hosts
        self.known = known
        self.recorded: Optional[str] = None

    def missing_host_key(self, client, hostname, key):
        if self.known.is_revoked(key):
            raise paramiko.SSHException("revoked host key")  # never recorded; refused after connect()
        client.get_host_keys().add(hostname, key.get_name(), key)
        # Append instead of save_host_keys(): rewriting the user's file would drop
        # comments, markers and hashed entries paramiko does not round-trip.
        knownhosts.append(self.known_hosts, f"{hostname} {key.get_name()} {key.get_base64()}")
        self.recorded = f"{key.get_name()} SHA256:{_fingerprint(key)}"


def _fingerprint(key: paramiko.PKey) -> str:
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def host_key_name(host: HostConfig) -> str:
    return host.hostname if host.port == 22 else f"[{host.hostname}]:{host.port}"


class SSHTransport(Transport):
    def __init__(self, host: HostConfig, trust_new_host_key: bool = False):
        self.host = host
        self.trust_new_host_key = trust_new_host_key
        self._conn: Optional[paramiko.SSHClient] = None
        self._jump_client: Optional[paramiko.SSHClient] = None
        self._sftp = None
        self._bridge = None  # serves rsync's remote shell over this connection, once needed
        self.known_hosts = Path(host.known_hosts_file).expanduser()

    # -- connection ---------------------------------------------------------------

    def _connection(self):
        if self._conn is None:
            self._conn = self._open(self.host)
        return self._conn

    def _open(self, host: HostConfig, via_jump: bool = True) -> paramiko.SSHClient:
        # A bare Paramiko client: Fabric's Connection adds ~60 ms of imports (invoke) and
        # an AutoAddPolicy we would only have to undo.
        kwargs = {"allow_agent": True, "look_for_keys": not host.identity_file}
        if host.identity_file:
            key_file = Path(host.identity_file).expanduser()
            if not key_file.is_file():
                raise OrchError(f"identity_file {key_file} of host {host.name} does not exist"
                                + (f" ({host.source})" if host.source else ""), ExitCode.CONFIG,
                                hint="fix identity_file in the host config, or remove it to use your SSH agent "
                                     "and default keys")
            kwargs["key_filename"] = [str(key_file)]
        if host.user:
            kwargs["username"] = host.user
        sock = self._gateway_channel(host) if via_jump else None
        if sock is not None:
            kwargs["sock"] = sock
        client = paramiko.SSHClient()
        known = knownhosts.load(self.known_hosts, client.get_host_keys())
        policy = _TrustOnFirstUse(self.known_hosts, known) if self.trust_new_host_key else _Refuse()
        client.set_missing_host_key_policy(policy)
        where = host.display()
        try:
            client.connect(host.hostname, port=host.port, timeout=host.connect_timeout,
                           banner_timeout=host.connect_timeout, auth_timeout=host.connect_timeout, **kwargs)
        except paramiko.BadHostKeyException as exc:
            raise OrchError(
                f"the SSH host key of {where} has CHANGED (got {exc.key.get_name()} "
                f"SHA256:{_fingerprint(exc.key)}): refusing to connect",
                ExitCode.HOST_KEY,
                hint=f"if the host was really reinstalled, remove its old line from {self.known_hosts} "
                f"(ssh-keygen -R '{host_key_name(host)}' -f {self.known_hosts}) after checking the new key out of band",
            )
        except paramiko.AuthenticationException as exc:
            raise OrchError(
                f"SSH authentication failed for {where}: {exc}",
                ExitCode.UNREACHABLE,
                hint="check `user` and `identity_file` in the host config, and that the key is in the host's authorized_keys",
            )
        except paramiko.SSHException as exc:
            if "revoked host key" in str(exc):
                raise self._revoked(host) from None
            if portcheck.banner_failure(exc):
                found = portcheck.describe_non_ssh(host.hostname, host.port, host.connect_timeout,
                                                   f"{host.hostname}:{host.port}")
                if found:
                    raise OrchError(found, ExitCode.UNREACHABLE,
                                    hint=f"check `port` (sshd listens on 22 unless told otherwise) and `hostname` of "
                                         f"host {host.name}" + (f" in {host.source}" if host.source else "")) from None
            if "not found in known_hosts" in str(exc):
                offered = ""
                if isinstance(policy, _Refuse) and policy.key is not None:
                    offered = f" (it offers {policy.key.get_name()} SHA256:{_fingerprint(policy.key)})"
                certs = (" orch does not check host certificates (@cert-authority lines): trust the host's own key."
                         if known.cert_authorities else "")
                raise OrchError(
                    f"the SSH host key of {where} is not in {self.known_hosts}{offered}: refusing an unknown host",
                    ExitCode.HOST_KEY,
                    hint="compare that fingerprint with the one the host's admin gives you (on the host: "
                         "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then re-run with --trust-new-host-key "
                         "to record it." + certs,
                )
            raise OrchError(f"SSH connection to {where} failed: {exc}", ExitCode.UNREACHABLE)
        except (socket.timeout, TimeoutError) as exc:
            raise OrchError(
                f"cannot reach {where}: connection timed out after {host.connect_timeout:.0f} s ({exc})",
                ExitCode.UNREACHABLE,
                hint="is the host up and the address/port right? behind a bastion? set proxy_jump",
            )
        except (OSError, paramiko.ssh_exception.NoValidConnectionsError) as exc:
            raise OrchError(
                f"cannot reach {where}: {portcheck.os_reason(exc, host.port)}",
                ExitCode.UNREACHABLE,
                hint="is the host up, sshd running and the hostname/port right?",
            )
        if known.is_revoked(client.get_transport().get_remote_server_key()):
            client.close()
            raise self._revoked(host)
        if isinstance(policy, _TrustOnFirstUse) and policy.recorded:
            print(f"recorded new host key for {host_key_name(host)} ({policy.recorded}) in {self.known_hosts}",
                  file=sys.stderr)
        client.get_transport().set_keepalive(host.keepalive)
        return client

    def _revoked(self, host: HostConfig) -> OrchError:
        return OrchError(f"the SSH host key of {host.display()} is marked @revoked in {self.known_hosts}: "
                         "refusing to connect", ExitCode.HOST_KEY,
                         hint="a revoked key must never be accepted; ask the host's admin what happened")

    def _jump(self, host: HostConfig) -> Optional[HostConfig]:
        """The first hop of ProxyJump ([user@]host[:port]) as a host with the same key rules."""
        if not host.proxy_jump:
            return None
        spec = host.proxy_jump.split(",")[0]
        user, _, rest = spec.rpartition("@")
        name, _, port = rest.partition(":")
        return HostConfig(name=f"{host.name}-jump", hostname=name, port=int(port or 22), user=user or host.user,
                          identity_file=host.identity_file, known_hosts_file=host.known_hosts_file,
                          connect_timeout=host.connect_timeout, keepalive=host.keepalive)

    def _gateway_channel(self, host: HostConfig):
        """ProxyJump: a direct-tcpip channel through a verified connection to the jump host."""
        jump = self._jump(host)
        if jump is None:
            return None
        self._jump_client = self._open(jump, via_jump=False)
        return self._jump_client.get_transport().open_channel(
            "direct-tcpip", (host.hostname, host.port), ("127.0.0.1", 0), timeout=host.connect_timeout)

    # -- commands -----------------------------------------------------------------

    @property
    def workdir(self) -> str:
        # SSH commands and SFTP start in the login's home: ~/x is simply x.
        wd = self.host.workdir
        if wd == "~":
            return "."
        return wd[2:] if wd.startswith("~/") else wd

    def _exec(self, command, timeout, stdin):
        # Straight on a Paramiko channel rather than Fabric's run(): invoke feeds stdin
        # with a sleep per read and polls for the exit, which cost seconds per command.
        import threading

        conn = self._connection()
        try:
            chan = conn.get_transport().open_session(timeout=self.host.connect_timeout)
            chan.settimeout(timeout)
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin.encode())
            chan.shutdown_write()
            err_chunks = []
            reader = threading.Thread(target=lambda: err_chunks.append(chan.makefile_stderr("rb").read()),
                                      daemon=True)
            reader.start()
            out = chan.makefile("rb").read()
            reader.join(timeout)
            rc = chan.recv_exit_status()
            chan.close()
            if rc == -1 and not conn.get_transport().is_active():
                # No exit status because the connection died under the command.
                raise EOFError("the connection closed before the command ended")
        except socket.timeout:
            raise OrchError(f"command timed out after {timeout:.0f} s on {self.host.name}: {command[:200]}",
                            ExitCode.REMOTE)
        except (socket.error, EOFError, paramiko.SSHException) as exc:
            raise self._lost(exc)
        err = b"".join(err_chunks)
        return Result(out.decode(errors="replace"), err.decode(errors="replace"), rc)

    def stream(self, command, out=sys.stdout):
        from . import shell

        conn = self._connection()
        try:
            chan = conn.get_transport().open_session(timeout=self.host.connect_timeout)
            chan.set_combine_stderr(True)
            chan.exec_command(shell.with_path(self.host.extra_path, command))
            try:
                while True:
                    data = chan.recv(65536)
                    if not data:
                        break
                    out.write(data.decode(errors="replace"))
                    out.flush()
                # Waits for the exit status; -1 when the channel closed without one.
                rc = chan.recv_exit_status()
            finally:
                chan.close()
        except (socket.error, EOFError, paramiko.SSHException) as exc:
            raise self._lost(exc)
        if rc == -1:  # the stream ended with no exit status: the connection dropped under it
            raise self._lost("it closed while streaming")
        return rc

    def _lost(self, why) -> OrchError:
        return OrchError(f"lost the SSH connection to {self.host.display()}: {why}", ExitCode.UNREACHABLE)

    def _sftp_client(self):
        if self._sftp is None:
            self._sftp = self._connection().open_sftp()
        return self._sftp

    def _mkdirs(self, remote_dir: str) -> None:
        from . import shell

        self.run(shell.join(["mkdir", "-p", "--", remote_dir]))

    def put_text(self, text, remote_path):
        import posixpath

        self._mkdirs(posixpath.dirname(remote_path) or ".")
        sftp = self._sftp_client()
        tmp = remote_path + ".tmp"
        with sftp.open(tmp, "w") as fh:
            fh.write(text.encode())
        sftp.posix_rename(tmp, remote_path)

    def put_file(self, local_path, remote_path):
        import posixpath

        self._mkdirs(posixpath.dirname(remote_path) or ".")
        sftp = self._sftp_client()
        tmp = remote_path + ".tmp"
        sftp.put(str(local_path), tmp)
        sftp.posix_rename(tmp, remote_path)

    def get_file(self, remote_path, local_path):
        local_path.parent.mkdir(parents=True, exist_ok=True)
        self._sftp_client().get(remote_path, str(local_path))

    def _exec_channel(self, command: str):
        """A new channel running ``command`` (for rsync, through orchestrator/rsync_bridge.py)."""
        chan = self._connection().get_transport().open_session(timeout=self.host.connect_timeout)
        chan.exec_command(shell.with_path(self.host.extra_path, command))
        return chan

    def rsync_rsh(self) -> Optional[List[str]]:
        # rsync rides this verified connection instead of logging in again with OpenSSH.
        if self._bridge is None:
            from .rsync_bridge import RsyncBridge

            self._bridge = RsyncBridge(self._exec_channel)
        return self._bridge.rsh()

    def rsync_target(self, remote_path: str) -> str:
        # The host part only tells rsync the path is remote: the bridge knows the host.
        return f"orch:{remote_path}"

    def close(self):
        if self._bridge is not None:
            self._bridge.close()
            self._bridge = None
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._jump_client is not None:
            self._jump_client.close()
            self._jump_client = None
