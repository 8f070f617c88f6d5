"""The SSH transport: one verified Paramiko connection per CLI command.

Commands, SFTP and rsync (through orchestrator/transport/rsync_bridge.py) all ride that one
connection.  Many tools accept any host key (AutoAddPolicy, StrictHostKeyChecking=no).
We read the user's known_hosts as ssh(1) does (orchestrator/transport/knownhosts.py: patterns,
negations, hashed names) and refuse unknown keys unless the user explicitly trusts a
new one; a changed or revoked key is always refused.  ProxyJump chains
(orchestrator/transport/proxyjump.py) verify every hop the same way.
"""

from __future__ import annotations

import codecs
import logging
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

from orchestrator.config.hosts import HostConfig, HostFile
from orchestrator.config.sshconfig import paramiko
from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport import knownhosts, portcheck, shell
from orchestrator.transport.base import Result, Transport, brief, stall_hint, temp_name, timed_out, unfinished_hint

# Paramiko logs failures from its transport thread (with tracebacks) through `logging`;
# with no handler configured, Python prints them on stderr ahead of orch's own message.
# Every failure reaches the user as one OrchError instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class _ProxyCommand(paramiko.ProxyCommand):
    """Paramiko's ProxyCommand, with its stderr read as it comes and closed at most once.

    Paramiko pipes the command's stderr and never reads it: a command that writes more
    than a pipe holds (64 KiB; `ssh -v -W %h:%p bastion` does in a few connections) would
    block, and the connection with it.  A thread keeps the last TAIL bytes, for the
    message when the command fails.  Paramiko's close() signals the command's PID whether
    or not it has ended and been reaped, and Paramiko closes the socket again from its
    exit handler (a ProcessLookupError traceback after a failed connection); this close()
    ends the command once and reaps it, so no command outlives its connection."""

    TAIL = 4096

    def __init__(self, command_line: str):
        super().__init__(command_line)
        self._stderr_tail = b""
        self._stderr_reader = threading.Thread(target=self._read_stderr, name="proxy_command stderr", daemon=True)
        self._stderr_reader.start()

    def _read_stderr(self) -> None:
        stream = self.process.stderr
        while True:
            try:
                chunk = stream.read(65536)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            self._stderr_tail = (self._stderr_tail + chunk)[-self.TAIL :]

    def stderr_tail(self, timeout: float = 1.0) -> str:
        """The last words of an ended command's stderr (waiting up to TIMEOUT for the pipe to close)."""
        self._stderr_reader.join(timeout)
        return self._stderr_tail.decode("utf-8", "replace")

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # it ignored SIGTERM
                self.process.kill()
                self.process.wait()


class _HostKeyRefused(paramiko.SSHException):
    """Raised inside connect() by _CheckHostKey; turned into an OrchError by _connect_error."""

    def __init__(self, verdict: knownhosts.Verdict, key: paramiko.PKey):
        super().__init__(verdict.status)
        self.verdict = verdict
        self.key = key


class _CheckHostKey(paramiko.MissingHostKeyPolicy):
    """Decide every offered key with knownhosts (the client's own HostKeys stay empty, so
    paramiko asks us each time): wildcards, negations and hashed names count as ssh(1)
    counts them.  An unknown key is recorded only with --trust-new-host-key."""

    def __init__(self, known: knownhosts.KnownHosts, trust_new: bool):
        self.known = known
        self.trust_new = trust_new
        self.recorded: Optional[str] = None

    def missing_host_key(self, client, hostname, key):
        verdict = self.known.check(hostname, key)
        if verdict.status == "ok":
            return
        if verdict.status == "unknown" and self.trust_new:
            # Append instead of rewriting: the user's file keeps its comments, markers,
            # patterns and hashed entries.
            knownhosts.append(self.known.path, f"{hostname} {key.get_name()} {key.get_base64()}")
            self.recorded = f"{key.get_name()} {knownhosts.fingerprint(key.asbytes())}"
            return
        raise _HostKeyRefused(verdict, key)


def _fingerprint(key: paramiko.PKey) -> str:
    return knownhosts.fingerprint(key.asbytes())[len("SHA256:") :]


# What an SFTP call can raise: besides a lost connection (EOFError, SSHException) and the
# server's refusals (OSError), SFTPError when it answers with the wrong kind of message
# ("Expected handle"), which a broken or hostile server does.
SFTP_FAILURES = (OSError, EOFError, paramiko.SSHException, paramiko.SFTPError)


def _write_remote(sftp, path: str, data: bytes) -> None:
    with sftp.open(path, "w") as fh:
        fh.write(data)


# The whole of a command given no timeout of its own (mkdir, `tail`, the launch's checks):
# each takes seconds; a host still trickling output to one after ten minutes is not working.
QUICK_LIMIT_S = 600.0


class _Deadline:
    """How long the next wait on a command's channel may last.

    ``idle`` bounds each wait: a read (silence between two bytes) and, once the output has
    ended, the wait for the exit status.  ``overall`` (seconds, or None) bounds the whole
    command, start to exit status: a host that trickles a byte now and then, or closes its
    output and never exits, is left when it runs out.  Paramiko's channel timeout alone
    bounds one read at a time, and recv_exit_status() waits without any bound."""

    def __init__(self, idle: float, overall: Optional[float] = None, clock=time.monotonic):
        self.idle = idle
        self.overall = overall
        self._clock = clock
        self._end = None if overall is None else clock() + overall

    def wait_s(self) -> float:
        """Seconds the next wait may take; socket.timeout once the overall limit has passed."""
        if self._end is None:
            return self.idle
        left = self._end - self._clock()
        if left <= 0:
            raise socket.timeout(f"no exit status within {self.overall:.0f} s")
        return min(self.idle, left)

    def recv(self, chan, read):
        """``read`` (chan.recv or chan.recv_stderr) with this wait's limit on the channel."""

        def bounded(nbytes: int) -> bytes:
            chan.settimeout(self.wait_s())
            return read(nbytes)

        return bounded

    def expired(self) -> bool:
        """The overall limit has passed (what a socket.timeout then means)."""
        return self._end is not None and self._clock() >= self._end

    def exit_status(self, chan) -> int:
        """The command's exit status (-1: the channel closed without one), waited for no
        longer than the next wait may take; socket.timeout past that."""
        if not chan.status_event.wait(self.wait_s()):
            raise socket.timeout("no exit status")
        return chan.recv_exit_status()  # set by now: returns at once


def _public_key(path: Path) -> bool:
    """Whether PATH holds an OpenSSH public key line (`ssh-ed25519 AAAA... comment`), the
    .pub half named where the private key belongs: Paramiko then says only "not a valid
    OPENSSH private key file", as if the connection had failed."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).split(None, 2)
    except OSError:
        return False  # the connection's own error says why it cannot be read
    return len(head) >= 2 and head[1].startswith(b"AAAA") and b"PRIVATE KEY" not in head[0]


class _Unanswered(socket.timeout):
    """The host did not answer a channel request (exec, subsystem) within its limit."""


def _request(chan, ask, limit: float) -> None:
    """``ask()`` (chan.exec_command or chan.invoke_subsystem) with at most LIMIT seconds for
    the host's answer: Paramiko waits for it without any, so a server that never answers
    would hold every command forever.  Past it the channel is closed, which ends Paramiko's
    wait, and _Unanswered raised."""
    late = threading.Event()

    def give_up() -> None:
        late.set()
        _close(chan)

    timer = threading.Timer(limit, give_up)
    timer.daemon = True
    timer.start()
    try:
        ask()
    except (EOFError, paramiko.SSHException):
        if late.is_set():
            raise _Unanswered(f"no answer to the request within {limit:.0f} s") from None
        raise
    finally:
        timer.cancel()
    if late.is_set():  # answered as the limit passed: the channel is closed all the same
        raise _Unanswered(f"no answer to the request within {limit:.0f} s")


def _close(chan) -> None:
    """Close a command's channel on the way out of a failure, which stays the error."""
    if chan is not None:
        try:
            chan.close()
        except (OSError, EOFError, paramiko.SSHException):
            pass


def _login_kwargs(host: HostConfig) -> dict:
    """Paramiko's connect() keywords for HOST's login: its identity file (checked: it is there
    and is the private half) or the agent and default keys, and its user."""
    kwargs = {"allow_agent": True, "look_for_keys": not host.identity_file}
    if host.identity_file:
        key_file = Path(host.identity_file).expanduser()
        if not key_file.is_file():
            raise OrchError(
                f"identity_file {key_file} of host {host.name} does not exist"
                + (f" ({host.source})" if host.source else ""),
                ExitCode.CONFIG,
                hint="fix identity_file in the host config, or remove it to use your SSH agent and default keys",
            )
        if _public_key(key_file):
            pair = key_file.with_suffix("") if key_file.suffix == ".pub" else None
            raise OrchError(
                f"identity_file {key_file} of host {host.name} is a public key"
                + (f" ({host.source})" if host.source else "")
                + ": orch signs in with the private half",
                ExitCode.CONFIG,
                hint="set identity_file to the private key"
                + (f" ({pair}, its pair beside it)" if pair is not None and pair.is_file() else "")
                + "; the .pub file is what goes into the host's authorized_keys",
            )
        kwargs["key_filename"] = [str(key_file)]
    if host.user:
        kwargs["username"] = host.user
    return kwargs


def host_key_name(host: HostConfig) -> str:
    return knownhosts.host_key_name(host.hostname, host.port)


class SSHTransport(Transport):
    def __init__(self, host: HostConfig, trust_new_host_key: bool = False):
        self.host = host
        self.trust_new_host_key = trust_new_host_key
        self._conn: Optional[paramiko.SSHClient] = None
        self._jump_clients: List[paramiko.SSHClient] = []
        self._sftp = None
        self._bridge = None  # serves rsync's remote shell over this connection, once needed
        self._liveness: List = []  # liveness.Liveness, one per connection: the hops' and the host's

    # -- connection ---------------------------------------------------------------

    def _connection(self):
        if self._conn is None:
            from orchestrator.transport import proxyjump

            hops = proxyjump.chain(self.host)
            sock = self._proxy(self.host) if self.host.proxy_command and not hops else None
            for i, hop in enumerate(hops):
                label = f"jump host {hop.name} ({hop.display()}, hop {i + 1} of {len(hops)} to {self.host.name})"
                client = self._open(hop, sock, label)
                self._jump_clients.append(client)
                nxt = hops[i + 1] if i + 1 < len(hops) else self.host
                sock = self._tunnel(client, label, nxt)
            self._conn = self._open(self.host, sock)
        return self._conn

    def _proxy(self, host: HostConfig):
        """HOST's connection carried by its proxy_command, run by /bin/sh as ssh(1) runs it
        (`exec`, so closing the connection ends the command itself, not only its shell)."""
        return _ProxyCommand(shell.join(["/bin/sh", "-c", "exec " + host.proxy_command]))

    def _proxy_error(self, host: HostConfig, where: str, sock, exc: BaseException) -> OrchError:
        """Why a connection through a proxy_command failed, with the command's own last
        words when it has ended (its stderr: local output, shown as plain text)."""
        process = sock.process
        try:
            process.wait(timeout=1)  # a command that closed the pipe is ending: its exit code
        except subprocess.TimeoutExpired:
            pass
        if process.returncode is None:
            detail = str(exc) or type(exc).__name__
        else:  # Paramiko's own words ("No existing session") would only say the pipe closed
            tail = sock.stderr_tail().strip().splitlines()
            detail = f"the command exited with code {process.returncode}" + (
                f": {ascii(tail[-1])[1:-1]}" if tail else ""
            )
        return OrchError(
            f"SSH connection to {where} through proxy_command {host.proxy_command!r} failed: {detail}",
            ExitCode.UNREACHABLE,
            hint="run the command by hand: it must connect its stdin/stdout to the host's sshd"
            + (f" ({host.source})" if host.source else ""),
        )

    def _tunnel(self, client: paramiko.SSHClient, label: str, nxt: HostConfig):
        """A direct-tcpip channel from a verified hop to the next host of the chain."""
        try:
            return client.get_transport().open_channel(
                "direct-tcpip", (nxt.hostname, nxt.port), ("127.0.0.1", 0), timeout=nxt.connect_timeout
            )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise OrchError(
                f"{label} cannot reach {nxt.hostname}:{nxt.port}: {exc or type(exc).__name__}",
                ExitCode.UNREACHABLE,
                hint="check the hop order in proxy_jump and that the jump host allows TCP forwarding",
            ) from None

    def _open(self, host: HostConfig, sock=None, label: str = "") -> paramiko.SSHClient:
        """A connected, verified client for HOST (through SOCK: a proxy command or a hop's
        tunnel), with its liveness probes started."""
        # A bare Paramiko client: Fabric's Connection adds ~60 ms of imports (invoke) and
        # an AutoAddPolicy we would only have to undo.
        kwargs = _login_kwargs(host)
        if sock is not None:
            kwargs["sock"] = sock
        known_file = Path(host.known_hosts_file).expanduser()
        if not known_file.is_file() and known_file != Path(HostFile.known_hosts_file).expanduser():
            raise self._no_known_hosts(host, known_file)
        known = knownhosts.load(known_file)
        name = host_key_name(host)
        known_types = known.key_types(name)

        def transport_factory(sock, **kw):
            t = paramiko.Transport(sock, **kw)
            opts = t.get_security_options()
            opts.key_types = knownhosts.preferred_key_types(known_types, tuple(opts.key_types))
            return t

        client = paramiko.SSHClient()
        policy = _CheckHostKey(known, self.trust_new_host_key)
        client.set_missing_host_key_policy(policy)
        where = label or host.display()
        try:
            client.connect(
                host.hostname,
                port=host.port,
                timeout=host.connect_timeout,
                banner_timeout=host.connect_timeout,
                auth_timeout=host.connect_timeout,
                transport_factory=transport_factory,
                **kwargs,
            )
        except (paramiko.SSHException, OSError) as exc:  # every failure to connect: said in orch's words
            client.close()
            raise self._connect_error(host, where, sock, known, exc) from None
        if known.is_revoked(client.get_transport().get_remote_server_key()):
            client.close()
            raise self._key_error(host, where, known, knownhosts.Verdict("revoked"), None)
        if policy.recorded:
            print(f"recorded new host key for {name} ({policy.recorded}) in {known_file}", file=sys.stderr)
        if host.keepalive > 0:  # probes that want a reply: a host that stops answering is given up
            from orchestrator.transport import liveness  # here: a command that never connects skips it

            self._liveness.append(
                liveness.Liveness(client.get_transport(), host.keepalive, host.keepalive_count).start()
            )
        return client

    def _connect_error(
        self, host: HostConfig, where: str, sock, known: knownhosts.KnownHosts, exc: BaseException
    ) -> OrchError:
        """Why connecting to HOST (WHERE, through SOCK) failed with EXC, as an OrchError."""
        if isinstance(exc, _HostKeyRefused):
            return self._key_error(host, where, known, exc.verdict, exc.key)
        if isinstance(exc, paramiko.AuthenticationException):
            return OrchError(
                f"SSH authentication failed for {where}: {exc}",
                ExitCode.UNREACHABLE,
                hint="check `user` and `identity_file` in the host config, "
                "and that the key is in the host's authorized_keys",
            )
        # Through a proxy command, "no SSH banner" or a reset says the command failed:
        # probing the host's port directly (below) would be beside the point.
        if isinstance(sock, _ProxyCommand):
            return self._proxy_error(host, where, sock, exc)
        if isinstance(exc, paramiko.SSHException):
            if portcheck.banner_failure(exc):
                found = portcheck.describe_non_ssh(
                    host.hostname, host.port, host.connect_timeout, f"{host.hostname}:{host.port}"
                )
                if found:
                    return OrchError(
                        found,
                        ExitCode.UNREACHABLE,
                        hint=f"check `port` (sshd listens on 22 unless told otherwise) and `hostname` of "
                        f"host {host.name}" + (f" in {host.source}" if host.source else ""),
                    )
            return OrchError(f"SSH connection to {where} failed: {exc}", ExitCode.UNREACHABLE)
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return OrchError(
                f"cannot reach {where}: connection timed out after {host.connect_timeout:.0f} s ({exc})",
                ExitCode.UNREACHABLE,
                hint="is the host up and the address/port right? behind a bastion? set proxy_jump",
            )
        return OrchError(  # OSError, NoValidConnectionsError (an OSError)
            f"cannot reach {where}: {portcheck.os_reason(exc, host.port)}",
            ExitCode.UNREACHABLE,
            hint="is the host up, sshd running and the hostname/port right?",
        )

    def _no_known_hosts(self, host: HostConfig, known_file: Path) -> OrchError:
        """A known_hosts file named by the host's config that is not there: most likely a
        wrong path.  Trusting the host's key would start a new file there and check this
        host against it, not against the user's real known_hosts: never suggested."""
        alias = host.source == "~/.ssh/config"
        key = "UserKnownHostsFile" if alias else "known_hosts_file"
        return OrchError(
            f"{key} {known_file} of host {host.name} does not exist"
            + (f" ({host.source})" if host.source else "")
            + ": orch cannot check the host's key against it",
            ExitCode.CONFIG,
            hint=f"fix {key} in {host.source or 'the host config'} (the file ssh checks host keys against, "
            f"usually ~/.ssh/known_hosts), or remove it to use ~/.ssh/known_hosts; to start a new file there on "
            f"purpose, create it (`touch {known_file}`) and check the host's key with `orch hosts check {host.name}`",
        )

    def _key_error(
        self,
        host: HostConfig,
        where: str,
        known: knownhosts.KnownHosts,
        verdict: knownhosts.Verdict,
        key: Optional[paramiko.PKey],
    ) -> OrchError:
        path = known.path
        if verdict.status == "revoked":
            return OrchError(
                f"the SSH host key of {where} is marked @revoked in {path}: refusing to connect",
                ExitCode.HOST_KEY,
                hint="a revoked key must never be accepted; ask the host's admin what happened",
            )
        offered = f"{key.get_name()} SHA256:{_fingerprint(key)}"
        if verdict.status == "changed":
            lines = "; ".join(
                e.describe() + (f" (pattern {e.hosts})" if not e.hashed else " (hashed name)") for e in verdict.matching
            )
            return OrchError(
                f"the SSH host key of {where} has CHANGED (got {offered}; {path} expects {lines}): refusing to connect",
                ExitCode.HOST_KEY,
                hint=f"if the host was really reinstalled, remove the line(s) above from {path} "
                f"(ssh-keygen -R '{host_key_name(host)}' -f {path} removes exact and hashed entries; edit "
                "pattern lines by hand) after checking the new key out of band",
            )
        certs = (
            " orch does not check host certificates (@cert-authority lines): trust the host's own key."
            if known.cert_authorities
            else ""
        )
        return OrchError(
            f"the SSH host key of {where} is not in {path} (it offers {offered}): refusing an unknown host",
            ExitCode.HOST_KEY,
            hint="compare that fingerprint with the one the host's admin gives you (on the host: "
            "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then re-run with --trust-new-host-key "
            "to record it." + certs,
        )

    # -- commands -----------------------------------------------------------------

    @property
    def workdir(self) -> str:
        # SSH commands and SFTP start in the login's home: ~/x is simply x.
        wd = self.host.workdir
        if wd == "~":
            return "."
        return wd[2:] if wd.startswith("~/") else wd

    def _exec(self, command, timeout, stdin, max_output):
        # Straight on a Paramiko channel rather than Fabric's run(): invoke feeds stdin
        # with a sleep per read and polls for the exit, which cost seconds per command.
        from orchestrator.transport.base import read_capped

        conn = self._connection()
        # A command given a timeout (`orch status`: STATUS_TIMEOUT_S) must reach its exit
        # status within it, however the host paces its output.  One given none (mkdir, the
        # run's prepare, `tail` for `orch logs`) is quick: a host silent for its io_timeout,
        # or one that ended the output but has not exited io_timeout later, is stalled; and
        # one that trickles a byte now and then is left after QUICK_LIMIT_S all the same.
        if timeout is not None:
            limits = _Deadline(timeout, timeout)
        else:
            limits = _Deadline(self.host.io_timeout, max(QUICK_LIMIT_S, self.host.io_timeout))
        ended = False  # the output ended: what is left is the wait for the exit status
        chan = None
        try:
            chan = conn.get_transport().open_session(timeout=self.host.connect_timeout)
            chan.settimeout(limits.wait_s())
            _request(chan, lambda: chan.exec_command(command), min(self.host.io_timeout, limits.wait_s()))
            if stdin is not None:
                chan.sendall(stdin.encode())
            chan.shutdown_write()
            got = {}

            def read_stderr():
                try:
                    got["err"] = read_capped(limits.recv(chan, chan.recv_stderr), max_output, chan.close)
                except socket.timeout:
                    pass  # stdout's read times out too and says so

            reader = threading.Thread(target=read_stderr, daemon=True)
            reader.start()
            out, over_out = read_capped(limits.recv(chan, chan.recv), max_output, chan.close)
            ended = True
            reader.join(limits.wait_s())
            err, over_err = got.get("err", (b"", False))
            if over_out or over_err:
                chan.close()  # stops the command (SIGPIPE on its next write)
                return Result(out.decode(errors="replace"), err.decode(errors="replace"), -1, True)
            rc = limits.exit_status(chan)
            chan.close()
            if rc == -1 and not conn.get_transport().is_active():
                # No exit status because the connection died under the command.
                raise EOFError("the connection closed before the command ended")
        except _Unanswered:
            raise self._unanswered("start a command", command) from None
        except socket.timeout:
            _close(chan)  # leave the command (its next write gets SIGPIPE)
            if timeout is not None or limits.expired():
                raise timed_out(self.host.name, limits.overall, command) from None
            if ended:
                raise self._no_exit(command) from None
            raise OrchError(
                f"{self.host.name} sent nothing for {limits.idle:.0f} s, so orch stopped waiting for: {brief(command)}",
                ExitCode.REMOTE,
                hint=stall_hint(self.host.name),
            ) from None
        except (socket.error, EOFError, paramiko.SSHException) as exc:
            _close(chan)
            raise self._lost(exc) from None
        return Result(out.decode(errors="replace"), err.decode(errors="replace"), rc)

    def stream(self, command, out=sys.stdout):
        from orchestrator.transport import shell

        conn = self._connection()
        # One decoder for the whole stream: a character split between two reads stays whole.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        command = shell.with_path(self.host.extra_path, command)
        try:
            chan = conn.get_transport().open_session(timeout=self.host.connect_timeout)
            chan.set_combine_stderr(True)
            _request(chan, lambda: chan.exec_command(command), self.host.io_timeout)
            try:
                # Followed logs may be quiet for hours: no limit while they flow (Ctrl-C
                # stops following).  Once the output has ended, the exit status is due.
                while True:
                    data = chan.recv(65536)
                    out.write(decoder.decode(data, final=not data))
                    out.flush()
                    if not data:
                        break
                # -1 when the channel closed without one.
                rc = _Deadline(self.host.io_timeout).exit_status(chan)
            finally:
                chan.close()
        except _Unanswered:
            raise self._unanswered("start a command", command) from None
        except socket.timeout:
            raise self._no_exit(command) from None
        except (socket.error, EOFError, paramiko.SSHException) as exc:
            raise self._lost(exc) from None
        if rc == -1:  # the stream ended with no exit status: the connection dropped under it
            raise self._lost("it closed while streaming")
        return rc

    def _no_exit(self, command: str) -> OrchError:
        """A command with no timeout of its own that ended its output but had no exit
        status io_timeout later (a helper that closed stdout and hangs)."""
        idle = self.host.io_timeout
        return OrchError(
            f"{self.host.name} ended the output but did not exit within {idle:.0f} s, "
            f"so orch stopped waiting for: {brief(command)}",
            ExitCode.REMOTE,
            hint=unfinished_hint(self.host.name, idle) + "; a slow host can have a longer io_timeout in the host file",
        )

    def _unanswered(self, what: str, command: str = "") -> OrchError:
        """A host that did not answer the request to WHAT (an exec or a subsystem) within
        its io_timeout: Paramiko alone would wait for ever."""
        idle = self.host.io_timeout
        return OrchError(
            f"{self.host.name} did not answer the request to {what} for {idle:.0f} s, so orch stopped waiting"
            + (f" for: {brief(command)}" if command else ""),
            ExitCode.REMOTE,
            hint=stall_hint(self.host.name),
        )

    def _lost(self, why) -> OrchError:
        # A connection closed because the host stopped answering keepalives: say that, not
        # the end-of-file the close made.
        gone = [w.verdict for w in self._liveness if w.verdict]
        if gone:
            return OrchError(
                f"lost the SSH connection to {self.host.display()}: {gone[-1]}",
                ExitCode.UNREACHABLE,
                hint="the host, or the network to it, stopped answering; "
                f"`orch hosts check {self.host.name}` says when it is back",
            )
        return OrchError(f"lost the SSH connection to {self.host.display()}: {why}", ExitCode.UNREACHABLE)

    def source(self, remote_dir):
        from orchestrator.transport.hostfiles import SftpSource

        return SftpSource(self, remote_dir)

    def _sftp_client(self):
        if self._sftp is None:
            # paramiko's open_sftp() waits for the server's answer without a limit: a
            # channel with the host's io_timeout makes each read (the handshake's too) raise
            # socket.timeout when a stalled or hostile host sends nothing.
            try:
                chan = self._connection().get_transport().open_session(timeout=self.host.connect_timeout)
                chan.settimeout(self.host.io_timeout)
                _request(chan, lambda: chan.invoke_subsystem("sftp"), self.host.io_timeout)
                self._sftp = paramiko.SFTPClient(chan)
            except _Unanswered:
                raise self._unanswered("start SFTP") from None
            except SFTP_FAILURES as exc:
                raise self.sftp_error("opening SFTP", exc) from None
        return self._sftp

    def sftp_error(self, what: str, exc: BaseException) -> OrchError:
        """An SFTP failure as one message: a stall says how long the host was silent."""
        if isinstance(exc, socket.timeout):
            return OrchError(
                f"{what} on {self.host.name}: the host sent nothing for {self.host.io_timeout:.0f} s over SFTP",
                ExitCode.REMOTE,
                hint=stall_hint(self.host.name),
            )
        if not self._connection().get_transport().is_active():
            return self._lost(exc)
        return OrchError(f"{what} on {self.host.name} over SFTP failed: {exc}", ExitCode.REMOTE)

    def _mkdirs(self, remote_dir: str) -> None:
        from orchestrator.transport import shell

        self.run(shell.join(["mkdir", "-p", "--", remote_dir]))

    def put_text(self, text, remote_path):
        data = text.encode()
        self.sftp_write(remote_path, len(data), lambda sftp, tmp: _write_remote(sftp, tmp, data))

    def put_file(self, local_path, remote_path):
        size = Path(local_path).stat().st_size
        self.sftp_write(remote_path, size, lambda sftp, tmp: sftp.put(str(local_path), tmp))

    def sftp_write(self, remote_path: str, size: int, write, mkdirs: bool = True) -> None:
        """``write(sftp, tmp)`` into a temp name beside REMOTE_PATH, then rename it over.
        SFTP reports a full disk as a bare "Failure": ask the host how much room is left."""
        import posixpath

        if mkdirs:
            self._mkdirs(posixpath.dirname(remote_path) or ".")
        sftp = self._sftp_client()
        # A unique temp name: two launches writing one path at once must not share it.
        tmp = posixpath.join(posixpath.dirname(remote_path), temp_name(posixpath.basename(remote_path)))
        try:
            write(sftp, tmp)
            sftp.posix_rename(tmp, remote_path)
        except SFTP_FAILURES as exc:
            if isinstance(exc, socket.timeout) or not self._connection().get_transport().is_active():
                raise self.sftp_error(f"writing {remote_path}", exc) from None
            try:
                sftp.remove(tmp)
            except SFTP_FAILURES:
                pass
            from orchestrator.transport.diskspace import host_is_full, host_no_space

            if host_is_full(self, size):
                raise host_no_space(self, f"writing {remote_path}") from None
            raise OrchError(
                f"could not write {remote_path} on {self.host.name} over SFTP: {exc}", ExitCode.REMOTE
            ) from None

    def _exec_channel(self, command: str):
        """A new channel running ``command`` (for rsync, through orchestrator/transport/rsync_bridge.py)."""
        chan = self._connection().get_transport().open_session(timeout=self.host.connect_timeout)
        try:
            _request(
                chan, lambda: chan.exec_command(shell.with_path(self.host.extra_path, command)), self.host.io_timeout
            )
        except _Unanswered:
            raise self._unanswered("start rsync") from None
        return chan

    verified = " (host key verified)"

    def _pick_copier(self):
        from orchestrator.transport.files import pick_remote

        return pick_remote(self, (self._host_tools or {}).get("rsync"))

    def rsync_rsh(self) -> Optional[List[str]]:
        # rsync rides this verified connection instead of logging in again with OpenSSH.
        if self._bridge is None:
            from orchestrator.transport.rsync_bridge import RsyncBridge

            self._bridge = RsyncBridge(self._exec_channel, self.host.io_timeout)
        return self._bridge.rsh()

    def rsync_target(self, remote_path: str) -> str:
        # The host part only tells rsync the path is remote: the bridge knows the host.
        return f"orch:{remote_path}"

    def rsync_stopped(self, call: str) -> Optional[str]:
        return self._bridge.stopped(call) if self._bridge is not None else None

    def close(self):
        if self._bridge is not None:
            self._bridge.close()
            self._bridge = None
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._conn is not None:
            self._conn.close()  # a proxy_command ends here too (_ProxyCommand.close)
            self._conn = None
        while self._jump_clients:  # the hops last, nearest the host first
            self._jump_clients.pop().close()
        while self._liveness:
            self._liveness.pop().stop()
