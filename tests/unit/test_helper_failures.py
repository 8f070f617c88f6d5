"""How a failed host helper command reads: a missing code snapshot is told apart."""

import subprocess

from orchestrator.errors import ExitCode
from orchestrator.runs.hostops import helper_failed, hostctl


def test_a_missing_snapshot_is_its_own_error_and_other_failures_stay_remote(tmp_path):
    # The real shell text: no `cd:` noise, the mark and the path on stderr, exit 66 - and
    # the rest of a chained command line still runs (no `exit` of the whole shell).
    gone = tmp_path / "code" / "abc"
    line = hostctl("python3", str(gone), "status") + "; echo after"
    res = subprocess.run(["sh", "-c", line], capture_output=True, text=True)
    assert res.stdout == "after\n" and "cd:" not in res.stderr
    err = helper_failed("nigel", 66, res.stderr)
    assert err.code == ExitCode.RUN_STATE and f"the run's code snapshot is not on nigel ({gone})" in err.message
    assert "--resume" in err.hint
    rc = subprocess.run(["sh", "-c", hostctl("python3", str(gone), "status")]).returncode
    assert rc == 66
    other = helper_failed("nigel", 1, "Traceback\nValueError: x\n")
    assert (
        other.code == ExitCode.REMOTE
        and other.message == "host helper failed on nigel (exit 1): Traceback | ValueError: x"
    )
    assert helper_failed("nigel", 66, "no mark here").code == ExitCode.REMOTE
    assert "(?)" in helper_failed("nigel", 66, "orch-no-snapshot").message  # a garbled host: no traceback
