"""known_hosts matching as OpenSSH's match_hostname()/match_pattern_list() does it, and the
key check built on it (ok / changed / unknown / revoked)."""

import base64
import os

import paramiko
import pytest

from orchestrator.transport import knownhosts
from orchestrator.transport.knownhosts import hash_host, match_hostname, match_pattern, match_pattern_list


@pytest.mark.parametrize(
    "string,pattern,expected",
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.*", True),
        ("127.0.0.1", "127.0.0.?", True),
        ("127.0.0.10", "127.0.0.?", False),
        ("[127.0.0.1]:2301", "[127.0.0.*]:2301", True),  # brackets are literal, not a class
        ("[127.0.0.1]:2301", "[127.0.0.*]:2302", False),
        ("[127.0.0.1]:2301", "127.0.0.*", False),  # a port-22 pattern never names another port
        ("[127.0.0.1]:2301", "*", True),
        ("", "*", True),
        ("abc", "a*c", True),
        ("abc", "a*b", False),
        ("aXbXc", "a*b*c", True),
        ("a", "**", True),
        ("host.example.com", "*.example.com", True),
        ("example.com", "*.example.com", False),
        ("a[1]", "a[1]", True),
    ],
)
def test_match_pattern(string, pattern, expected):
    assert match_pattern(string, pattern) is expected


@pytest.mark.parametrize(
    "host,patterns,expected",
    [
        ("gpu1", "gpu1,gpu2", 1),
        ("gpu2", "gpu1,gpu2", 1),
        ("gpu3", "gpu1,gpu2", 0),
        ("gpu1", "gpu*,!gpu1", -1),  # a negation excludes the line, whatever else matches
        ("gpu1", "!gpu1,gpu*", -1),
        ("gpu2", "gpu*,!gpu1", 1),
        ("gpu1", "!gpu2", 0),  # a negation alone never makes a match
        ("GPU1", "gpu1", 1),  # case-insensitive, both sides
        ("gpu1", "GPU*", 1),
        ("[10.0.0.5]:22", "[10.0.0.*]:22,![10.0.0.5]:22", -1),
    ],
)
def test_match_hostname(host, patterns, expected):
    assert match_hostname(host, patterns) == expected


def test_over_long_subpattern_never_matches():
    assert match_pattern_list("a", "*" * 2000) == 0


def _key(tmp_path, name="k"):
    import subprocess

    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    typ, b64 = (path.with_name(name + ".pub")).read_text().split()[:2]
    return paramiko.PKey.from_type_string(typ, base64.b64decode(b64)), f"{typ} {b64}"


@pytest.fixture
def keys(tmp_path):
    return _key(tmp_path, "real"), _key(tmp_path, "other")


NAME = "[127.0.0.1]:2301"


@pytest.mark.parametrize(
    "line,expected",
    [
        ("[127.0.0.1]:2301 {other}", "changed"),
        ("[127.0.0.*]:2301 {other}", "changed"),  # the report's case: ssh(1) says CHANGED
        ("[127.0.0.?]:2301 {other}", "changed"),
        ("* {other}", "changed"),
        ("nigel,[127.0.0.1]:2301 {other}", "changed"),
        ("{hashed} {other}", "changed"),
        ("[127.0.0.*]:2301,![127.0.0.1]:2301 {other}", "unknown"),  # negated: the line does not apply
        ("[127.0.0.*]:2301,![127.0.0.1]:2301 {real}", "unknown"),
        ("127.0.0.* {other}", "unknown"),  # port 22 only
        ("[127.0.0.*]:2301 {real}", "ok"),
        ("{hashed} {real}", "ok"),
        ("[127.0.0.*]:2301 {other}\n[127.0.0.1]:2301 {real}", "ok"),  # any matching line with the key
        ("[127.0.0.1]:2301 {real}\n@revoked * {real}", "revoked"),
        ("@cert-authority * {other}", "unknown"),
        ("garbage\n[127.0.0.1]:2301 ssh-ed25519 !!notbase64", "unknown"),
    ],
)
def test_check(keys, line, expected):
    (real, real_text), (_, other_text) = keys
    hashed = hash_host(NAME, os.urandom(20))
    known = knownhosts.parse(line.format(real=real_text, other=other_text, hashed=hashed))
    assert known.check(NAME, real).status == expected


def test_changed_names_the_lines(keys):
    (real, _), (_, other_text) = keys
    known = knownhosts.parse(f"# comment\nnigel {other_text}\n[127.0.0.*]:2301 {other_text}\n")
    verdict = known.check(NAME, real)
    assert verdict.status == "changed" and [e.line for e in verdict.matching] == [3]
    assert verdict.matching[0].describe().startswith("line 3: ssh-ed25519 SHA256:")


def test_a_key_of_the_wrong_type_is_skipped(keys):
    (real, real_text), _ = keys
    b64 = real_text.split()[1]
    known = knownhosts.parse(f"{NAME} ssh-rsa {b64}\n")
    assert known.skipped == 1 and known.check(NAME, real).status == "unknown"


def test_known_types_come_first(keys):
    (_, real_text), _ = keys
    known = knownhosts.parse(f"[127.0.0.*]:2301 {real_text}\n")
    assert known.key_types(NAME) == ["ssh-ed25519"]
    offered = ("ecdsa-sha2-nistp256", "rsa-sha2-512", "ssh-ed25519", "rsa-sha2-256", "ssh-rsa")
    assert knownhosts.preferred_key_types(["ssh-ed25519"], offered)[0] == "ssh-ed25519"
    assert knownhosts.preferred_key_types(["ssh-rsa"], offered)[:3] == ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
    assert sorted(knownhosts.preferred_key_types([], offered)) == sorted(offered)


@pytest.mark.parametrize("trust", [False, True])
def test_a_known_hosts_file_that_does_not_exist_is_a_config_error_never_trusted_into(tmp_path, trust):
    """A wrong path in known_hosts_file: trusting on first use would start a new file there
    and bypass the user's real known_hosts, so it is refused (exit 3) before connecting,
    pointing at the key, even with --trust-new-host-key; nothing is written."""
    from orchestrator.config.hosts import HostConfig
    from orchestrator.errors import ExitCode, OrchError
    from orchestrator.transport.ssh import SSHTransport

    missing = tmp_path / "no" / "known_hosts"
    host = HostConfig(
        name="box", hostname="127.0.0.1", port=1, known_hosts_file=str(missing), source="configs/hosts/box.yaml"
    )
    with pytest.raises(OrchError) as caught:
        SSHTransport(host, trust_new_host_key=trust)._connection()
    err = caught.value
    assert err.code == ExitCode.CONFIG
    assert err.message.startswith(f"known_hosts_file {missing} of host box does not exist (configs/hosts/box.yaml)")
    assert err.hint.startswith("fix known_hosts_file in configs/hosts/box.yaml")
    assert "--trust-new-host-key" not in err.hint
    assert not missing.parent.exists()


def test_an_identity_file_that_is_the_public_key_is_a_config_error(tmp_path):
    """The .pub half as identity_file: a config error (exit 3) saying so, with its private
    pair, before any connection (Paramiko said "not a valid OPENSSH private key file", exit 5)."""
    import subprocess

    from orchestrator.config.hosts import HostConfig
    from orchestrator.errors import ExitCode, OrchError
    from orchestrator.transport.ssh import SSHTransport

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text("")
    host = HostConfig(
        name="box",
        hostname="127.0.0.1",
        port=1,
        identity_file=f"{key}.pub",
        known_hosts_file=str(known),
        source="configs/hosts/box.yaml",
    )
    with pytest.raises(OrchError) as caught:
        SSHTransport(host)._connection()
    err = caught.value
    assert err.code == ExitCode.CONFIG
    assert err.message.startswith(f"identity_file {key}.pub of host box is a public key (configs/hosts/box.yaml)")
    assert f"set identity_file to the private key ({key}, its pair beside it)" in err.hint
