import pytest

from orchestrator.config.hosts import HostConfig, list_hosts, resolve_host, set_host_key
from orchestrator.config.project import Project
from orchestrator.errors import ExitCode, OrchError


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "configs" / "hosts").mkdir(parents=True)
    (tmp_path / "remote").mkdir()
    monkeypatch.setenv("ORCH_SSH_CONFIG", str(tmp_path / "ssh_config"))
    return Project(tmp_path)


def test_host_file_validated_with_file_key_and_expectation(project):
    path = project.configs / "hosts" / "gpu.yaml"
    path.write_text("hostname: h\nport: twenty-two\n")
    with pytest.raises(OrchError, match=r"gpu.yaml: key 'port': expected an integer, got 'twenty-two'"):
        resolve_host(project, "gpu")
    path.write_text("hostnme: h\n")
    with pytest.raises(OrchError, match="unknown key 'hostnme'"):
        resolve_host(project, "gpu")
    path.write_text("port: 22\n")
    with pytest.raises(OrchError, match="key 'hostname': required"):
        resolve_host(project, "gpu")


def test_ssh_config_alias_with_proxyjump(project, tmp_path):
    (tmp_path / "ssh_config").write_text(
        "Host nigel2\n  HostName nigel.example.org\n  User vincent\n  Port 2222\n"
        "  IdentityFile ~/.ssh/id_x\n  ProxyJump jump@bastion:22\n"
    )
    host = resolve_host(project, "nigel2")
    assert (host.hostname, host.user, host.port, host.proxy_jump) == (
        "nigel.example.org",
        "vincent",
        2222,
        "jump@bastion:22",
    )
    assert host.identity_file.endswith(".ssh/id_x")
    assert "nigel2" in [h.name for h in list_hosts(project)]


def test_unknown_host_and_set_key(project):
    with pytest.raises(OrchError, match="unknown host 'nope'"):
        resolve_host(project, "nope")
    (project.configs / "hosts" / "gpu.yaml").write_text("hostname: h  # the box\n")
    set_host_key(project, "gpu", "python", "/opt/env/bin/python")
    assert resolve_host(project, "gpu").python == "/opt/env/bin/python"
    local = resolve_host(project, "local")
    assert local.is_local and local.python  # defaults to the controller's interpreter
    set_host_key(project, "local", "python", "/x/python")
    assert resolve_host(project, "local").python == "/x/python"


def test_recording_a_key_for_an_ssh_alias_hints_the_resolved_yaml(project, tmp_path):
    import yaml

    (tmp_path / "ssh_config").write_text(
        "Host gpubox\n  HostName gpu.example.org\n  User yes\n  Port 2222\n"
        "  IdentityFile ~/.ssh/id_x\n  ProxyJump jump@bastion:22\n"
    )
    alias = resolve_host(project, "gpubox")
    with pytest.raises(OrchError) as info:
        set_host_key(project, "gpubox", "python", "/opt/env: 3/bin/python")
    first, _, block = info.value.hint.partition("\n")
    assert "configs/hosts/gpubox.yaml" in first and str(tmp_path / "ssh_config") in first
    assert "hostname: gpubox" not in block  # would not resolve: a host file does not read ~/.ssh/config
    assert yaml.safe_load(block) == {
        "hostname": "gpu.example.org",
        "port": 2222,
        "user": "yes",
        "identity_file": alias.identity_file,
        "proxy_jump": "jump@bastion:22",
        "python": "/opt/env: 3/bin/python",
    }  # "yes" and ": " quoted
    # Pasted as told, the file reaches the same host the alias did.
    (project.configs / "hosts" / "gpubox.yaml").write_text(block + "\n")
    host = resolve_host(project, "gpubox")
    for key in ("hostname", "port", "user", "identity_file", "proxy_jump", "known_hosts_file"):
        assert getattr(host, key) == getattr(alias, key), key
    assert host.python == "/opt/env: 3/bin/python"


def test_recording_a_key_for_a_plain_alias_needs_only_hostname(project, tmp_path):
    import yaml

    (tmp_path / "ssh_config").write_text("Host box\n")
    with pytest.raises(OrchError) as info:
        set_host_key(project, "box", "python", "/p")
    assert yaml.safe_load(info.value.hint.partition("\n")[2]) == {"hostname": "box", "python": "/p"}


@pytest.mark.parametrize(
    "lines, message",
    [
        ("  Port twenty\n", r"ssh_config \(Host box\): Port 'twenty' is not a number"),
        ("  Port 99999\n", r"ssh_config \(Host box\): Port: expected a port number from 1 to 65535, got 99999"),
        ("  ConnectTimeout soon\n", r"ssh_config \(Host box\): ConnectTimeout 'soon' is not a time"),
        ("  ConnectTimeout inf\n", r"ssh_config \(Host box\): ConnectTimeout: expected seconds above 0, at most 3600"),
        ("  ServerAliveInterval often\n", r"ssh_config \(Host box\): ServerAliveInterval 'often' is not a time"),
        ("  ServerAliveInterval 1.5\n", r"ssh_config \(Host box\): ServerAliveInterval '1.5' is not a time"),
        ("  ServerAliveInterval 1h30x\n", r"ServerAliveInterval '1h30x' is not a time"),
        ("  ServerAliveInterval " + "9" * 5000 + "\n", r"ServerAliveInterval '9999.*\.\.\. \(5000 characters\) is not"),
        # Each of these killed the keepalive watch with OverflowError: no dead peer was noticed.
        ("  ServerAliveInterval 9999999999\n", r"ServerAliveInterval '9999999999' is not a time"),
        (
            "  ServerAliveInterval 2d\n",
            r"\(Host box\): ServerAliveInterval: expected seconds from 0 to 86400, got 172800",
        ),
        ("  ServerAliveCountMax -1\n", r"\(Host box\): ServerAliveCountMax: expected a count from 1 to 1000, got -1"),
        ("  ServerAliveCountMax 1001\n", r"ServerAliveCountMax: expected a count from 1 to 1000, got 1001"),
        ('Host "unbalanced\n', r"ssh_config: cannot read this SSH config file: Unparsable host"),
    ],
)
def test_a_bad_ssh_config_value_is_one_message_naming_the_file_and_host(project, tmp_path, lines, message):
    # Each of these was a ValueError or ConfigParseError traceback (or, for the port, a
    # connection attempt to port 99999).
    (tmp_path / "ssh_config").write_text("Host box\n  HostName 127.0.0.1\n" + lines)
    with pytest.raises(OrchError, match=message) as caught:
        resolve_host(project, "box")
    assert caught.value.code == ExitCode.CONFIG and caught.value.hint
    assert len(caught.value.message) < 400


@pytest.mark.parametrize(
    "lines, message",
    [
        ("port: 0", r"box.yaml: key 'port': expected a port number from 1 to 65535, got 0"),
        ("connect_timeout: -1", r"box.yaml: key 'connect_timeout': expected seconds above 0, at most 3600, got -1"),
        ("io_timeout: 0.5", r"box.yaml: key 'io_timeout': expected seconds from 1 to 86400, got 0.5"),
        ("io_timeout: 10000000000.0", r"box.yaml: key 'io_timeout': expected seconds from 1 to 86400, got 1e\+10"),
        # keepalive 1e12 killed the keepalive watch with OverflowError: no dead peer was noticed
        ("keepalive: 1000000000000", r"box.yaml: key 'keepalive': expected seconds from 0 to 86400, got 1e\+12"),
        ("keepalive: -1", r"box.yaml: key 'keepalive': expected seconds from 0 to 86400, got -1"),
        ("keepalive_count: 0", r"box.yaml: key 'keepalive_count': expected a count from 1 to 1000, got 0"),
        ("keepalive_count: 100000", r"box.yaml: key 'keepalive_count': expected a count from 1 to 1000, got 100000"),
        ("warm_worker: 1.0e+30", r"box.yaml: key 'warm_worker': expected seconds from 0 to 604800 \(a week\)"),
        ("proxy_command: nc %h %q", r"box.yaml: proxy_command 'nc %h %q': unknown token %q"),
        ("proxy_command: nc %h %p\nproxy_jump: bastion", r"box.yaml: both proxy_jump and proxy_command are set"),
        ('proxy_command: "nc\\n%h"', r"key 'proxy_command': contains a control character"),
    ],
)
def test_a_bad_host_file_value_is_one_message(project, lines, message):
    (project.configs / "hosts" / "box.yaml").write_text(f"hostname: box\n{lines}\n")
    with pytest.raises(OrchError, match=message) as caught:
        resolve_host(project, "box")
    assert caught.value.code == ExitCode.CONFIG and caught.value.hint


def test_a_host_file_that_is_not_utf8_is_one_message(project):
    # Was a UnicodeDecodeError traceback; `orch hosts list` marks the file INVALID instead.
    (project.configs / "hosts" / "gpu.yaml").write_bytes(b"hostname: h\n\xbb\xff\n")
    with pytest.raises(OrchError, match=r"gpu.yaml: not UTF-8 text \(byte 12: b'\\xbb'\)") as caught:
        resolve_host(project, "gpu")
    assert caught.value.hint
    assert any("not UTF-8" in h.description for h in list_hosts(project) if h.name == "gpu")


def test_proxy_command_from_an_ssh_config_alias_and_a_host_file(project, tmp_path):
    (tmp_path / "ssh_config").write_text(
        "Host gpu\n  HostName 10.0.0.5\n  ProxyCommand ssh -W %h:%p bastion\n"
        "Host both\n  HostName 10.0.0.6\n  ProxyCommand ssh -W %h:%p bastion\n  ProxyJump bastion\n"
        "Host plain\n  HostName 10.0.0.7\n  ProxyCommand none\n"
    )
    assert resolve_host(project, "gpu").proxy_command == "ssh -W 10.0.0.5:22 bastion"  # Paramiko's expansion
    both = resolve_host(project, "both")  # ssh(1) takes whichever it reads first; orch, ProxyJump
    assert (both.proxy_jump, both.proxy_command) == ("bastion", "")
    assert resolve_host(project, "plain").proxy_command == ""
    path = project.configs / "hosts" / "box.yaml"
    box = "hostname: box.example.org\nport: 2222\nuser: ann\n"
    path.write_text(box + "proxy_command: 'relay %h %p as %r for %n 100%%'\n")
    expanded = "relay box.example.org 2222 as ann for box 100%"
    assert resolve_host(project, "box").proxy_command == expanded
    assert resolve_host(project, "box").proxy_command == expanded  # from the cache, expanded the same


def test_an_ssh_config_alias_keeps_its_serveralive_settings(project, tmp_path):
    """ServerAliveInterval / ServerAliveCountMax are what orch calls keepalive /
    keepalive_count; an alias that says nothing gets orch's defaults (ssh's own default
    interval, 0, would never notice a host that stops answering)."""
    (tmp_path / "ssh_config").write_text(
        "Host box\n  HostName 127.0.0.1\n  ServerAliveInterval 5\n  ServerAliveCountMax 2\n"
        "Host plain\n  HostName 127.0.0.1\n"
    )
    box = resolve_host(project, "box")
    assert (box.keepalive, box.keepalive_count) == (5, 2)
    plain = resolve_host(project, "plain")
    assert (plain.keepalive, plain.keepalive_count) == (HostConfig.keepalive, HostConfig.keepalive_count) == (15, 3)


@pytest.mark.parametrize(
    "lines, keepalive, count, connect",
    [
        ("  ServerAliveInterval 1h\n", 3600, 3, 10),  # was refused: "not a number"
        ("  ServerAliveInterval 1m30s\n  ConnectTimeout 1m\n", 90, 3, 60),
        ("  ServerAliveInterval 1H2M3S\n  ConnectTimeout 2.5\n", 3723, 3, 2.5),
        ("  ServerAliveInterval 1m30\n", 90, 3, 10),  # the last number's unit is optional
        ("  ServerAliveInterval 0\n", 0, 3, 10),  # none, as in ssh
        # ssh would give up at the first silent interval, before any probe: orch's least, 1
        ("  ServerAliveCountMax 0\n", 15, 1, 10),
    ],
)
def test_ssh_config_keepalive_keywords_are_read_in_ssh_units(project, tmp_path, lines, keepalive, count, connect):
    (tmp_path / "ssh_config").write_text("Host box\n  HostName 127.0.0.1\n" + lines)
    box = resolve_host(project, "box")
    assert (box.keepalive, box.keepalive_count, box.connect_timeout) == (keepalive, count, connect)
