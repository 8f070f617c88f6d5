import pytest

from orchestrator.errors import OrchError
from orchestrator.hosts import list_hosts, resolve_host, set_host_key
from orchestrator.project import Project


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
        "  IdentityFile ~/.ssh/id_x\n  ProxyJump jump@bastion:22\n")
    host = resolve_host(project, "nigel2")
    assert (host.hostname, host.user, host.port, host.proxy_jump) == ("nigel.example.org", "vincent", 2222, "jump@bastion:22")
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
