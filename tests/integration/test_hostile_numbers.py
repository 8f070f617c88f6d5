"""Numbers too big to read, from a host, through the real sshd: a fake `sinfo` on the host's
extra_path prints a partition line with a 5000-digit gres count or time limit.  Python's
int() refuses more than 4300 digits with a ValueError, and `orch hosts check` / `orch
bootstrap --dry-run` died of it with a traceback; such a number is now no count and no
time limit (orchestrator/backends/slurm_facts.py, config/slurm.py: seconds)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

HUGE = "9" * 5000


def _fake_slurm(project, tmp_path, line: str) -> None:
    """The host's sinfo prints LINE (%P|%a|%l|%D|%G|%L); its squeue lists no job."""
    bindir = tmp_path / "fakeslurm"
    bindir.mkdir()
    (bindir / "sinfo").write_text(f"#!/bin/sh\necho '{line}'\n")
    (bindir / "squeue").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("sinfo", "squeue"):
        (bindir / tool).chmod(0o755)
    project.write_host(extra_path=[str(bindir)], scheduler="slurm")


@pytest.mark.parametrize(
    "line",
    [
        f"gpu*|up|1-00:00:00|1|gpu:a100:{HUGE}|n/a",  # the gres count
        f"gpu*|up|{HUGE}|1|gpu:a100:4|{HUGE}",  # MaxTime and DefaultTime
    ],
    ids=["gres-count", "time-limits"],
)
def test_a_huge_number_in_sinfo_is_skipped_by_hosts_check_and_the_bootstrap_plan(ssh_project, tmp_path, line):
    _fake_slurm(ssh_project, tmp_path, line)
    for args in (("hosts", "check", "testhost"), ("bootstrap", "testhost", "--dry-run")):
        proc = ssh_project.orch(*args, timeout=120)
        assert "Traceback" not in proc.stdout + proc.stderr, (args, proc.stderr[-2000:])
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
    check = ssh_project.orch("hosts", "check", "testhost", timeout=120)
    assert "gpu (default): up, 1 nodes" in check.stdout, check.stdout[-2000:]


def test_a_huge_keepalive_is_a_config_error_not_a_dead_keepalive_watch(ssh_project):
    """keepalive: 10**12 connected, then the keepalive watch died of OverflowError (a
    traceback on stderr, exit 0) and a host that stopped answering was never noticed."""
    ssh_project.write_host(keepalive=10**12)
    proc = ssh_project.orch("hosts", "check", "testhost", timeout=120)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "testhost.yaml: key 'keepalive': expected seconds from 0 to 86400, got 1e+12" in proc.stderr
