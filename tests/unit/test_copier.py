"""Transport.copier: rsync, SFTP or a plain copy is decided once, inside the transport."""

import pytest

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
    monkeypatch.setattr(files, "local_rsync_problem", lambda: None)
    t = FakeSSH(has_rsync=False)
    assert isinstance(files.pick_remote(t, True), files.RsyncCopier)
    assert t.commands == []  # the probe's answer spared a round trip


def test_sftp_when_the_host_lacks_rsync_asked_once(monkeypatch, capsys):
    monkeypatch.setattr(files, "local_rsync_problem", lambda: None)
    t = FakeSSH(has_rsync=False)
    assert isinstance(files.pick_remote(t, None), files.SftpCopier)
    assert len(t.commands) == 1
    assert "rsync is missing on box" in capsys.readouterr().err


def test_sftp_without_asking_when_this_machine_lacks_rsync(monkeypatch, capsys):
    monkeypatch.setattr(files, "local_rsync_problem", lambda: "rsync is missing on this machine")
    t = FakeSSH(has_rsync=True)
    assert isinstance(files.pick_remote(t, None), files.SftpCopier)
    assert t.commands == [] and "rsync is missing on this machine" in capsys.readouterr().err


@pytest.fixture
def rsync_on_path(tmp_path, monkeypatch):
    """Put an `rsync` that prints VERSION_TEXT for --version first on PATH (None: no rsync)."""

    def put(version_text):
        bindir = tmp_path / "bin"
        bindir.mkdir(exist_ok=True)
        if version_text is not None:
            (bindir / "rsync").write_text(f"#!/bin/sh\nprintf '%s\\n' {version_text!r}\n")
            (bindir / "rsync").chmod(0o755)
        monkeypatch.setenv("PATH", str(bindir))
        files.local_rsync_problem.cache_clear()
        return files.local_rsync_problem()

    yield put
    files.local_rsync_problem.cache_clear()


@pytest.mark.parametrize(
    "version_text, problem",
    [
        ("rsync  version 3.2.7  protocol version 31", None),  # Debian 12
        ("rsync  version v3.4.1  protocol version 32", None),  # Homebrew's prints a v
        ("rsync  version 3.1.0  protocol version 31", None),
        ("rsync  version 3.0.9  protocol version 30", "is 3.0.9; orch needs 3.1 or newer"),
        ("rsync  version 2.6.9  protocol version 29", "is 2.6.9; orch needs 3.1 or newer"),  # macOS to 15.3
        ("openrsync: protocol version 29", "is not rsync 3.1 or newer: 'openrsync: protocol version 29'"),
        ("", "is not rsync 3.1 or newer: 'no version'"),
        (None, "rsync is missing on this machine"),
    ],
)
def test_this_machines_rsync_is_used_only_when_it_has_orchs_options(rsync_on_path, version_text, problem):
    found = rsync_on_path(version_text)
    assert found == problem if problem is None else problem in found


def test_an_unusable_rsync_here_means_sftp_and_says_how_to_fix_it(rsync_on_path, capsys):
    rsync_on_path("rsync  version 2.6.9  protocol version 29")
    t = FakeSSH(has_rsync=True)
    assert isinstance(files.pick_remote(t, None), files.SftpCopier)
    err = capsys.readouterr().err
    assert t.commands == [] and "is 2.6.9; orch needs 3.1 or newer; falling back to SFTP" in err
    assert "brew install rsync" in err


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
