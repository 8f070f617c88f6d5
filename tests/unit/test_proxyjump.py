"""ProxyJump chains resolved as ssh(1) resolves them."""

import pytest

from orchestrator.config.hosts import HostConfig
from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport.proxyjump import chain, parse_hop


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("bastion", ("", "bastion", None)),
        ("me@bastion", ("me", "bastion", None)),
        ("me@bastion:2222", ("me", "bastion", 2222)),
        ("ssh://me@bastion:2222", ("me", "bastion", 2222)),
        ("[::1]:2222", ("", "::1", 2222)),
        ("a@b@host", ("a@b", "host", None)),
    ],
)
def test_parse_hop(spec, expected):
    assert parse_hop(spec) == expected


@pytest.mark.parametrize("spec", ["", "me@", "host:x", "host:0", "host:70000", "[::1", "a b"])
def test_parse_hop_refuses(spec):
    with pytest.raises(ValueError):
        parse_hop(spec)


def _target(**kw):
    base = dict(
        name="gpu",
        hostname="10.0.0.5",
        user="vin",
        identity_file="/k/id",
        known_hosts_file="/k/kh",
        source="configs/hosts/gpu.yaml",
    )
    base.update(kw)
    return HostConfig(**base)


@pytest.fixture
def ssh_config(tmp_path, monkeypatch):
    path = tmp_path / "ssh_config"
    monkeypatch.setenv("ORCH_SSH_CONFIG", str(path))
    return path


def test_none_and_empty_mean_no_jump(ssh_config):
    for spec in ("", "none", "None", " none "):
        assert chain(_target(proxy_jump=spec)) == []


def test_two_hops_in_order_each_with_its_own_settings(ssh_config):
    ssh_config.write_text(
        "Host hop2\n  HostName 10.0.0.2\n  Port 2202\n  User op\n  IdentityFile /k/op\n"
        "  UserKnownHostsFile /k/kh2 /k/kh3\n"
    )
    hops = chain(_target(proxy_jump="jump@10.0.0.1:2201,hop2"))
    assert [(h.hostname, h.port, h.user, h.identity_file, h.known_hosts_file) for h in hops] == [
        ("10.0.0.1", 2201, "jump", "/k/id", "/k/kh"),  # unconfigured: the target's key and known_hosts
        ("10.0.0.2", 2202, "op", "/k/op", "/k/kh2"),
    ]
    assert hops[1].name == "hop2" and not hops[1].proxy_jump


def test_the_first_hops_own_proxyjump_goes_first(ssh_config):
    ssh_config.write_text(
        "Host inner\n  HostName 10.0.0.2\n  ProxyJump outer\n"
        "Host outer\n  HostName 10.0.0.1\n  ProxyJump none\n"
        "Host *\n  ProxyJump ignored-for-later-hops\n"
    )
    hops = chain(_target(proxy_jump="inner,10.0.0.3"))
    assert [h.hostname for h in hops] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_loops_and_bad_hops_are_config_errors(ssh_config):
    ssh_config.write_text("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
    for spec, words in (("a", "loops"), ("x,,y", "empty hop"), ("me@:22", "no host name"), ("h:99999", "port")):
        with pytest.raises(OrchError) as err:
            chain(_target(proxy_jump=spec))
        assert err.value.code == ExitCode.CONFIG and words in err.value.message
        assert "configs/hosts/gpu.yaml" in err.value.message
