"""Host keys are verified, failures are specific, hostile values never execute."""

import json
import os
import subprocess

import pytest

pytestmark = pytest.mark.integration


def test_unknown_host_key_refused_then_trusted_on_request(ssh_project, tmp_path):
    p = ssh_project
    known = tmp_path / "kh" / "known_hosts"
    p.write_host(known_hosts_file=str(known))
    for extra in ([], ["--trust-new-host-key"]):
        # A known_hosts_file that is not there is a wrong path until the user says otherwise:
        # trusting would start a new file, away from the known_hosts they meant.
        missing = p.orch("hosts", "check", "testhost", *extra)
        assert missing.returncode == 3, missing.stderr
        assert f"known_hosts_file {known} of host testhost does not exist" in missing.stderr
        assert "fix known_hosts_file in" in missing.stderr and "--trust-new-host-key" not in missing.stderr
        assert not known.parent.exists()
    known.parent.mkdir()
    known.touch()  # a new file, on purpose
    refused = p.orch("hosts", "check", "testhost")
    assert refused.returncode == 4
    assert "not in" in refused.stderr and "--trust-new-host-key" in refused.stderr
    assert "Traceback" not in refused.stderr and known.read_text() == ""

    trusted = p.orch("hosts", "check", "testhost", "--trust-new-host-key")
    assert trusted.returncode == 0, trusted.stderr
    assert "recorded new host key" in trusted.stderr
    assert known.read_text().split()[0:2] == p.sshd.known_hosts_line().split()[0:2]
    again = p.orch("hosts", "check", "testhost", "--json", check=True)  # now known: no flag needed
    facts = json.loads(again.stdout)
    assert facts["tools"]["tmux"] and facts["tools"]["rsync"]


def _sha256(pub_line: str) -> str:
    import base64
    import hashlib

    blob = base64.b64decode(pub_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def test_refusal_shows_the_fingerprint_and_trust_keeps_the_file_intact(ssh_project, tmp_path):
    p = ssh_project
    known = tmp_path / "known_hosts"
    # A file as users have them: a CA line, a comment, a malformed line, and no final newline.
    other = "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxqtR6u6Jb8f5Y3m2aV3Vq7Z8CwAUbJHqf0b1y2c3d4"
    known.write_text(
        "@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO3rxN\n"
        "# a comment\nnot a key line\n" + other
    )
    p.write_host(known_hosts_file=str(known))
    refused = p.orch("hosts", "check", "testhost")
    assert refused.returncode == 4, refused.stderr
    assert _sha256(p.sshd.host_key_pub) in refused.stderr  # what to compare with the admin's
    assert "@cert-authority" in refused.stderr and "Traceback" not in refused.stderr
    trusted = p.orch("hosts", "check", "testhost", "--trust-new-host-key")
    assert trusted.returncode == 0, trusted.stderr
    lines = known.read_text().splitlines()
    assert lines[3] == other  # the last line was not glued to the new entry
    assert lines[4].split()[1:] == p.sshd.host_key_pub.split()[:2]
    assert p.orch("hosts", "check", "testhost").returncode == 0


def test_revoked_host_key_refused_even_when_listed(ssh_project, tmp_path):
    p = ssh_project
    known = tmp_path / "known_hosts"
    key = " ".join(p.sshd.host_key_pub.split()[:2])
    known.write_text(p.sshd.known_hosts_line() + f"@revoked * {key}\n")
    p.write_host(known_hosts_file=str(known))
    for extra in ([], ["--trust-new-host-key"]):
        proc = p.orch("hosts", "check", "testhost", *extra)
        assert proc.returncode == 4, proc.stdout + proc.stderr
        assert "@revoked" in proc.stderr and "Traceback" not in proc.stderr
    known.write_text(f"@revoked * {key}\n")  # revoked and otherwise unknown: never recorded
    proc = p.orch("hosts", "check", "testhost", "--trust-new-host-key")
    assert proc.returncode == 4 and known.read_text() == f"@revoked * {key}\n"


def test_missing_identity_file_is_a_config_error(ssh_project, tmp_path):
    p = ssh_project
    p.write_host(identity_file=str(tmp_path / "nokey"))
    proc = p.orch("hosts", "check", "testhost")
    assert proc.returncode == 3, proc.stderr
    assert "identity_file" in proc.stderr and "nokey" in proc.stderr and "does not exist" in proc.stderr


def test_changed_host_key_always_refused(ssh_project, tmp_path):
    p = ssh_project
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    typ, key = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{p.sshd.port} {typ} {key}\n")
    p.write_host(known_hosts_file=str(known))
    for extra in ([], ["--trust-new-host-key"]):
        proc = p.orch("hosts", "check", "testhost", *extra)
        assert proc.returncode == 4, proc.stderr
        assert "CHANGED" in proc.stderr and "ssh-keygen -R" in proc.stderr
    assert known.read_text().count("\n") == 1  # never overwritten
    # rsync rides the same verified connection: a run is refused before anything is sent.
    run = p.orch("run", "smoke", "--host", "testhost", "--name", "never")
    assert run.returncode == 4 and not (p.remote_root / "runs").exists()


def test_unreachable_and_auth_failure_are_specific(ssh_project, tmp_path):
    p = ssh_project
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    p.write_host(port=closed_port)
    proc = p.orch("hosts", "check", "testhost")
    assert proc.returncode == 5 and "Traceback" not in proc.stderr
    assert f"127.0.0.1:{closed_port}: connection refused: nothing listens on port {closed_port}" in proc.stderr
    assert "Errno" not in proc.stderr

    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    p.write_host(identity_file=str(stranger))
    proc = p.orch("hosts", "check", "testhost")
    assert proc.returncode == 5 and "authentication failed" in proc.stderr

    p.write_host(python="/nonexistent/python3")
    proc = p.orch("run", "smoke", "--host", "testhost", "--name", "nopy")
    assert proc.returncode == 6 and "no python interpreter" in proc.stderr


class _Listener:
    """A TCP listener on 127.0.0.1 that is not an SSH server: ``reply`` is sent after the
    client's first line and the connection closed; None keeps every connection silent."""

    def __init__(self, reply):
        import socket
        import threading

        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            if self.reply is None:
                self.held.append(conn)
                continue
            try:
                conn.recv(256)
                conn.sendall(self.reply)
            except OSError:
                pass
            conn.close()

    def close(self):
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize(
    "reply, expected",
    [
        (
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            "127.0.0.1:{port} answered but is not an SSH server (it sent 'HTTP/1.1 400 Bad Request')",
        ),
        (None, "127.0.0.1:{port} accepted the connection but sent no SSH banner within 2 s"),
    ],
)
def test_a_port_that_is_not_ssh_is_named_in_one_line(ssh_project, reply, expected):
    p = ssh_project
    listener = _Listener(reply)
    try:
        p.write_host(port=listener.port, connect_timeout=2)
        proc = p.orch("hosts", "check", "testhost")
    finally:
        listener.close()
    assert proc.returncode == 5, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == "error: " + expected.format(port=listener.port), proc.stderr
    assert len(lines) == 2 and lines[1].startswith("  hint: check `port`")  # no Paramiko traceback ahead of it
    assert proc.stdout == ""


HOSTILE = [
    "a b",
    "q'uote",
    'dq"x',
    "semi;touch PWNED",
    "$(touch PWNED)",
    "`touch PWNED`",
    "new\nline",
    "-rf",
    "#(touch PWNED)",
    "#{session_name}",
    "trail\n",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_run_and_job_names_refused(ssh_project, value):
    p = ssh_project
    proc = p.orch("run", "smoke", "--host", "testhost", "--name", value)
    assert proc.returncode in (2, 3), proc.stderr
    assert "illegal run name" in proc.stderr or "Usage" in proc.stderr or "No such option" in proc.stderr
    proc = p.orch(
        "run", "smoke", "--host", "testhost", "--name", "ok", "--set", f"data.class_names={{'0': {json.dumps(value)}}}"
    )
    assert proc.returncode == 3 and "not allowed" in proc.stderr
    assert not (p.remote_root / "runs").exists()


def test_hostile_paths_and_values_are_data_not_code(ssh_project, tmp_path):
    """Workdir, data path and config values full of shell syntax go through the real sshd
    and a real run; nothing is executed, everything arrives literally."""
    p = ssh_project
    evil = "w d 'q' \"dq\" $(touch PWNED1) `touch PWNED2`; touch PWNED3 -x"
    workdir = tmp_path / evil / "host"
    p.write_host(workdir=str(workdir))
    data_dir = p.root / "data $(touch PWNED4)"
    data_dir.mkdir()
    (data_dir / "my data;`touch PWNED5`.jsonl").write_bytes((p.root / "configs/data/tiny_sentiment.jsonl").read_bytes())
    desc = "$(touch PWNED6); `touch PWNED7` 'x' \"y\"\nnext"
    proc = p.orch(
        "run",
        "smoke",
        "--host",
        "testhost",
        "--name",
        "evil",
        "--set",
        f"data.path={data_dir.name}/my data;`touch PWNED5`.jsonl",
        "--set",
        f"description={json.dumps(desc)}",
        "--set",
        "train.steps=5",
    )
    assert proc.returncode == 0, proc.stderr
    assert (workdir / "runs" / "evil" / "run.yaml").is_file()
    jobs = p.wait_state("evil")
    assert [j["state"] for j in jobs] == ["done", "done"], jobs
    import yaml

    resolved = yaml.safe_load((workdir / "runs" / "evil" / "run.yaml").read_text())
    assert resolved["experiment"]["description"] == desc
    assert resolved["experiment"]["data"]["path"].endswith("-my data;`touch PWNED5`.jsonl")
    assert p.orch("logs", "evil", "class-0", check=True).stdout
    p.orch("fetch-results", "evil", check=True)
    for root, _dirs, files in os.walk(tmp_path):
        assert not [f for f in files if f.startswith("PWNED")], (root, files)
    home = os.path.expanduser("~")
    assert not [f for f in os.listdir(home) if f.startswith("PWNED")]


def test_ssh_config_alias_is_a_host(ssh_project, tmp_path):
    """A bare `Host` alias from ~/.ssh/config works: HostName/User/Port/IdentityFile honoured."""
    import getpass

    p = ssh_project
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        "Host gpubox\n"
        f"    HostName 127.0.0.1\n    Port {p.sshd.port}\n    User {getpass.getuser()}\n"
        f"    IdentityFile {p.sshd.client_key}\n    UserKnownHostsFile {p.sshd.known_hosts}\n"
        "Host *\n    ServerAliveInterval 30\n"
    )
    p.env["ORCH_SSH_CONFIG"] = str(cfg)
    listed = json.loads(p.orch("hosts", "list", "--json", check=True).stdout)
    assert {"gpubox", "testhost", "local"} <= {h["name"] for h in listed}
    checked = p.orch("hosts", "check", "gpubox", "--json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["tools"]["tmux"]


def test_proxy_jump_through_a_bastion(ssh_project):
    """ProxyJump: Paramiko tunnels through the jump host, with the same known_hosts and
    strict checking, and rsync rides that tunnel (the loopback sshd is its own bastion)."""
    import getpass

    p = ssh_project
    p.write_host(proxy_jump=f"{getpass.getuser()}@127.0.0.1:{p.sshd.port}")
    before = p.sshd.logins()
    checked = p.orch("hosts", "check", "testhost", "--json")
    assert checked.returncode == 0, checked.stderr
    assert p.sshd.logins() == before + 2  # the jump, then the host through it
    before = p.sshd.logins()
    proc = p.orch("run", "smoke", "--host", "testhost", "--name", "jump", "--set", "train.steps=5")
    assert proc.returncode == 0, proc.stderr
    assert ", 0 files sent" not in proc.stderr  # code went through rsync over the jump
    assert p.sshd.logins() == before + 2  # rsync made no login of its own
    assert [j["state"] for j in p.wait_state("jump")] == ["done", "done"]
