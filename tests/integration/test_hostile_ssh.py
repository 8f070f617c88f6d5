"""known_hosts patterns and ProxyJump chains, through the real sshd (issue 9, items 4-5)."""

import getpass
import os
import sys

import pytest
import testprocs
from hostile import new_key

from orchestrator.transport.knownhosts import hash_host

pytestmark = pytest.mark.integration


def _fingerprint(key_text: str) -> str:
    import base64
    import hashlib

    blob = base64.b64decode(key_text.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


# {port}: the sshd's; {real}: its key; {other}: a key it does not have; {hashed}: its
# name hashed as ssh-keygen -H writes it.  Each is what ssh(1) -o StrictHostKeyChecking=yes
# says about the loopback sshd with that known_hosts file.
KEY_CASES = {
    "wildcard-star": ("# first\n[127.0.0.*]:{port} {other}\n", "changed", 2),
    "wildcard-question": ("[127.0.0.?]:{port} {other}\n", "changed", 1),
    "bare-star": ("* {other}\n", "changed", 1),
    "comma-list": ("nigel,[127.0.0.1]:{port} {other}\n", "changed", 1),
    "hashed": ("{hashed} {other}\n", "changed", 1),
    "wildcard-and-exact-both-wrong": ("[127.0.0.1]:{port} {other}\n[127.*]:* {other2}\n", "changed", 1),
    "negated-wrong": ("[127.0.0.*]:{port},![127.0.0.1]:{port} {other}\n", "unknown", None),
    "negated-right": ("[127.0.0.*]:{port},![127.0.0.1]:{port} {real}\n", "unknown", None),
    "other-port-pattern": ("127.0.0.* {other}\n", "unknown", None),
    "wildcard-right": ("[127.0.0.*]:{port} {real}\n", "ok", None),
    "hashed-right": ("{hashed} {real}\n", "ok", None),
    "negation-elsewhere": ("[127.0.0.*]:{port},![127.0.0.1]:{port} {other}\n[127.0.0.1]:{port} {real}\n", "ok", None),
    "any-matching-line": ("[127.0.0.*]:{port} {other}\n[127.0.0.1]:{port} {real}\n", "ok", None),
}


@pytest.mark.parametrize("case", sorted(KEY_CASES))
def test_known_hosts_patterns_decide_like_ssh(ssh_project, tmp_path, case):
    p = ssh_project
    template, expected, line = KEY_CASES[case]
    other, other2 = new_key(tmp_path / "other"), new_key(tmp_path / "other2")
    text = template.format(
        port=p.sshd.port,
        real=p.sshd.host_key_pub,
        other=other,
        other2=other2,
        hashed=hash_host(f"[127.0.0.1]:{p.sshd.port}", os.urandom(20)),
    )
    known = tmp_path / "known_hosts"
    known.write_text(text)
    p.write_host(known_hosts_file=str(known))
    plain = p.orch("hosts", "check", "testhost")
    trusted = p.orch("hosts", "check", "testhost", "--trust-new-host-key")
    for proc in (plain, trusted):
        assert "Traceback" not in proc.stderr
    if expected == "ok":
        assert plain.returncode == 0 and trusted.returncode == 0, plain.stderr + trusted.stderr
        assert known.read_text() == text
    elif expected == "changed":
        for proc in (plain, trusted):  # refused always: never "unknown", never recorded
            assert proc.returncode == 4, proc.stderr
            assert "CHANGED" in proc.stderr and _fingerprint(p.sshd.host_key_pub) in proc.stderr
            assert f"line {line}: ssh-ed25519 {_fingerprint(other)}" in proc.stderr, proc.stderr
        assert known.read_text() == text
    else:
        assert plain.returncode == 4 and "not in" in plain.stderr and "CHANGED" not in plain.stderr
        assert trusted.returncode == 0 and "recorded new host key" in trusted.stderr
        assert known.read_text().startswith(text) and known.read_text().count("\n") == text.count("\n") + 1
        assert p.orch("hosts", "check", "testhost").returncode == 0  # what was recorded is what ssh reads


def _user():
    return getpass.getuser()


def test_two_hop_proxy_jump_goes_through_both_hops(ssh_project):
    p = ssh_project
    hop = f"{_user()}@127.0.0.1:{p.sshd.port}"
    p.write_host(proxy_jump=f"{hop},{hop}")
    before = p.sshd.logins()
    checked = p.orch("hosts", "check", "testhost", "--json")
    assert checked.returncode == 0, checked.stderr
    assert p.sshd.logins() == before + 3  # hop 1, hop 2 through it, the host through hop 2


def test_a_hop_with_an_unknown_key_is_refused_by_name(ssh_project, tmp_path):
    p = ssh_project
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    cfg = tmp_path / "ssh_config"
    # hop2 is an alias with its own settings, among them a known_hosts file without the key.
    cfg.write_text(
        f"Host hop2\n    HostName 127.0.0.1\n    Port {p.sshd.port}\n    User {_user()}\n"
        f"    IdentityFile {p.sshd.client_key}\n    UserKnownHostsFile {empty}\n"
    )
    p.env["ORCH_SSH_CONFIG"] = str(cfg)
    p.write_host(proxy_jump=f"{_user()}@127.0.0.1:{p.sshd.port},hop2")
    before = p.sshd.logins()
    proc = p.orch("hosts", "check", "testhost")
    assert proc.returncode == 4, proc.stderr
    assert "jump host hop2" in proc.stderr and "hop 2 of 2" in proc.stderr and str(empty) in proc.stderr
    assert p.sshd.logins() == before + 1  # hop 1 only: nothing went past the refused hop
    # Trusting it records the hop's key in the hop's own known_hosts, and the chain works.
    trusted = p.orch("hosts", "check", "testhost", "--trust-new-host-key")
    assert trusted.returncode == 0, trusted.stderr
    assert empty.read_text().split()[1:3] == p.sshd.host_key_pub.split()[:2]


def test_a_changed_key_on_a_hop_is_refused(ssh_project, tmp_path):
    p = ssh_project
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.*]:{p.sshd.port} {new_key(tmp_path / 'k')}\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host bastion\n    HostName 127.0.0.1\n    Port {p.sshd.port}\n    UserKnownHostsFile {wrong}\n")
    p.env["ORCH_SSH_CONFIG"] = str(cfg)
    p.write_host(proxy_jump="bastion")
    proc = p.orch("hosts", "check", "testhost", "--trust-new-host-key")
    assert proc.returncode == 4 and "jump host bastion" in proc.stderr and "CHANGED" in proc.stderr


def test_proxy_jump_none_means_direct(ssh_project, tmp_path):
    p = ssh_project
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        "Host gpubox\n"
        f"    HostName 127.0.0.1\n    Port {p.sshd.port}\n    User {_user()}\n"
        f"    IdentityFile {p.sshd.client_key}\n    UserKnownHostsFile {p.sshd.known_hosts}\n"
        "    ProxyJump none\n"
        "Host *\n    ProxyJump nosuchbastion.invalid\n"
    )
    p.env["ORCH_SSH_CONFIG"] = str(cfg)
    before = p.sshd.logins()
    checked = p.orch("hosts", "check", "gpubox", "--json")
    assert checked.returncode == 0, checked.stderr
    assert p.sshd.logins() == before + 1
    p.write_host(proxy_jump="none")  # the same word in a host file
    assert p.orch("hosts", "check", "testhost").returncode == 0


RELAY = r"""
import os, socket, sys, threading
host, port, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(marker, "a") as fh:
    fh.write(f"{os.getpid()} {host}:{port}\n")
for i in range(int(sys.argv[4]) if len(sys.argv) > 4 else 0):  # chatter, as `ssh -v -W` writes
    os.write(2, b"debug1: %d bytes of chatter on stderr\n" % i)
conn = socket.create_connection((host, port))
def up():
    while True:
        data = os.read(0, 65536)
        if not data:
            break
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while True:
    data = conn.recv(65536)
    if not data:
        break
    os.write(1, data)
"""


def test_proxy_command_carries_the_connection_and_ends_with_it(ssh_project, tmp_path):
    p = ssh_project
    relay, marker = tmp_path / "relay.py", tmp_path / "relayed"
    relay.write_text(RELAY)
    p.write_host(proxy_command=f"{sys.executable} {relay} %h %p {marker}")
    before = p.sshd.logins()
    checked = p.orch("hosts", "check", "testhost", "--json")
    assert checked.returncode == 0, checked.stderr
    assert p.sshd.logins() == before + 1
    pid, target = marker.read_text().split()
    assert target == f"127.0.0.1:{p.sshd.port}"  # %h and %p, expanded
    assert not testprocs.alive(int(pid))  # the command ended with the connection
    # A run: the code sync, the launch and the fetch's rsync all ride the connection it carries.
    p.orch("run", "smoke", "--host", "testhost", "--name", "px", "--set", "train.steps=2", check=True)
    assert [j["state"] for j in p.wait_state("px")] == ["done", "done"]
    fetched = p.orch("fetch-results", "px", "--no-eval", check=True)
    assert "results verified" in fetched.stderr
    pids = [int(line.split()[0]) for line in marker.read_text().splitlines()]
    assert len(pids) >= 4 and not any(testprocs.alive(pid) for pid in pids)  # check, run, status, fetch
    # The same from an ~/.ssh/config alias.
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        f"Host viaproxy\n    HostName 127.0.0.1\n    Port {p.sshd.port}\n    User {_user()}\n"
        f"    IdentityFile {p.sshd.client_key}\n    UserKnownHostsFile {p.sshd.known_hosts}\n"
        f"    ProxyCommand {sys.executable} {relay} %h %p {marker}\n"
    )
    p.env["ORCH_SSH_CONFIG"] = str(cfg)
    relayed = len(marker.read_text().splitlines())
    checked = p.orch("hosts", "check", "viaproxy", "--json")
    assert checked.returncode == 0, checked.stderr
    assert len(marker.read_text().splitlines()) == relayed + 1


def test_a_proxy_command_that_writes_much_to_stderr_does_not_stall(ssh_project, tmp_path):
    # 10,000 lines (~400 KB) on stderr: more than a pipe holds, which nobody read before.
    p = ssh_project
    relay, marker = tmp_path / "relay.py", tmp_path / "relayed"
    relay.write_text(RELAY)
    p.write_host(proxy_command=f"{sys.executable} {relay} %h %p {marker} 10000")
    checked = p.orch("hosts", "check", "testhost", "--json", timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert "chatter" not in checked.stderr  # the command's stderr is not relayed while it works
    (pid,) = [int(line.split()[0]) for line in marker.read_text().splitlines()]
    assert not testprocs.alive(pid)
    # A failing command's last words are found after any amount of chatter.
    p.write_host(proxy_command="sh -c 'seq 100000 >&2; echo no route to the lab >&2; exit 7'")
    proc = p.orch("hosts", "check", "testhost")
    assert proc.returncode == 5 and "exited with code 7: no route to the lab" in proc.stderr, proc.stderr


def test_a_failing_proxy_command_says_so_with_its_own_words(ssh_project):
    p = ssh_project
    p.write_host(proxy_command="sh -c 'echo no route to the lab >&2; exit 7'")
    proc = p.orch("hosts", "check", "testhost")
    assert proc.returncode == 5, proc.stderr
    assert "through proxy_command" in proc.stderr and "exited with code 7: no route to the lab" in proc.stderr
    assert "Traceback" not in proc.stderr
