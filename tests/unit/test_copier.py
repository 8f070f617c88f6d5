"""Transport.copier: rsync, SFTP or a plain copy is decided once, inside the transport."""

from orchestrator.config.hosts import HostConfig
from orchestrator.transport import files
from orchestrator.transport.base import LocalTransport


class FakeSSH:
    """Enough of an SSH transport for pick_remote: counts the commands it is asked to run."""

    def __init__(self, has_rsync):
        self.host = HostConfig(name="box")
        self.has_rsync, self.commands = has_rsync, []

    def run(self, command, check=True):
        self.commands.append(command)

        class R:
            rc = 0 if self.has_rsync else 1

        return R()


def test_rsync_when_both_sides_have_it_known_from_the_probe(monkeypatch):
    monkeypatch.setattr(files, "local_rsync", lambda: True)
    t = FakeSSH(has_rsync=False)
    assert isinstance(files.pick_remote(t, True), files.RsyncCopier)
    assert t.commands == []  # the probe's answer spared a round trip


def test_sftp_when_the_host_lacks_rsync_asked_once(monkeypatch, capsys):
    monkeypatch.setattr(files, "local_rsync", lambda: True)
    t = FakeSSH(has_rsync=False)
    assert isinstance(files.pick_remote(t, None), files.SftpCopier)
    assert len(t.commands) == 1
    assert "rsync is missing on box" in capsys.readouterr().err


def test_sftp_without_asking_when_this_machine_lacks_rsync(monkeypatch, capsys):
    monkeypatch.setattr(files, "local_rsync", lambda: False)
    t = FakeSSH(has_rsync=True)
    assert isinstance(files.pick_remote(t, None), files.SftpCopier)
    assert t.commands == [] and "rsync is missing on this machine" in capsys.readouterr().err


def test_local_transport_copies_and_keeps_git_modes(tmp_path):
    root = tmp_path / "src"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "run.sh").write_text("#!/bin/sh\n")
    (root / "a" / "b" / "run.sh").chmod(0o700)
    (root / "x.py").write_text("pass\n")
    (root / "x.py").chmod(0o600)
    t = LocalTransport(HostConfig(name="local", workdir=str(tmp_path / "host")))
    assert isinstance(t.copier, files.LocalCopier) and t.copier is t.copier
    dest = tmp_path / "host" / "code"
    dest.mkdir(parents=True)
    assert t.push_tree(root, ["a/b/run.sh", "x.py"], str(dest)) == 2
    assert (dest / "a" / "b" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (dest / "x.py").stat().st_mode & 0o777 == 0o644
    t.push_file(root / "x.py", str(dest / "y.py"))
    assert (dest / "y.py").read_text() == "pass\n"
