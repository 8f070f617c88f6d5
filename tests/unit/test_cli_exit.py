"""How an `orch` process ends (cli.finish): the exit code, exit handlers and buffered output
kept, module teardown skipped, and a running non-daemon thread still waited for."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import timing
from orchcli import orch_cli

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timing.scaled(60),
        **kw,
    )


@pytest.mark.parametrize("code, status", [(None, 0), (0, 0), (3, 3)])
def test_exit_code_handlers_and_buffered_output_survive(code, status):
    proc = _python(
        f"""
        import atexit, sys
        from orchestrator.cli import finish
        atexit.register(lambda: print("handler ran"))
        sys.stdout.write("buffered, not yet flushed ")
        finish({code!r})
        print("not reached")
        """
    )
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == "buffered, not yet flushed handler ran\n"
    assert proc.stderr == ""


def test_a_message_is_printed_and_exits_1():
    proc = _python("from orchestrator.cli import finish\nfinish('error: no such run')\n")
    assert proc.returncode == 1
    assert proc.stderr == "error: no such run\n"


def test_teardown_is_skipped():
    # An object's finaliser runs in module teardown, so it shows whether teardown ran.
    code = """
        import sys
        class Noisy:
            def __del__(self):
                sys.stdout.write("torn down\\n")
        keep = Noisy()
        from orchestrator.cli import finish
        finish({})
        """
    assert _python(code.format("0")).stdout == ""
    assert _python(code.format("0").replace("finish(0)", "sys.exit(0)")).stdout == "torn down\n"


def test_a_running_non_daemon_thread_is_waited_for(tmp_path):
    done = tmp_path / "done"
    proc = _python(
        f"""
        import threading, time
        from pathlib import Path
        from orchestrator.cli import finish
        def work():
            time.sleep(0.3)
            Path({str(done)!r}).write_text("finished")
        threading.Thread(target=work).start()
        finish(4)
        """
    )
    assert proc.returncode == 4, proc.stderr
    assert done.read_text() == "finished"


def test_the_orch_process_ends_through_finish(tmp_path):
    # `python -m orchestrator.cli` (and the `orch` script: pyproject's entry) end through
    # finish: the exit code of a failing command survives, without module teardown.
    code = """
        import runpy, sys
        class Noisy:
            def __del__(self):
                sys.stdout.write("torn down\\n")
        sys.modules["noisy"] = Noisy()
        sys.argv = ["orch", "eval", "nosuch"]
        runpy.run_module("orchestrator.cli", run_name="__main__")
        """
    (tmp_path / "configs").mkdir()
    proc = _python(code, env={**os.environ, "ORCH_PROJECT": str(tmp_path)})
    assert proc.returncode == 8 and "no run named 'nosuch'" in proc.stderr and "Traceback" not in proc.stderr
    assert "torn down" not in proc.stdout
    scripts = (REPO / "pyproject.toml").read_text()
    assert 'orch = "orchestrator.cli:entry"' in scripts


ODD = "nosuch[/]x[red]y[bold]"  # Rich markup: a closing tag with nothing to close, and two styles


@pytest.mark.parametrize(
    "argv, code, said",
    [
        # the Typer app's error printing (commands/app.py run())
        (["cancel", ODD], 2, f"error: illegal run name '{ODD}'\n"),
        (["run", ODD], 3, f"error: experiment file {ODD} does not exist (looked for "),
        # the quick paths' (commands/quickpath.py error())
        (["status", ODD], 2, f"error: illegal run name '{ODD}'\n"),
        (["fetch-results", ODD], 2, f"error: illegal run name '{ODD}'\n"),
        (["eval", ODD], 2, f"error: illegal run name '{ODD}'\n"),
        (["study", "status", ODD], 3, f"error: study file {ODD} does not exist\n"),
    ],
    ids=["cancel", "run", "status", "fetch-results", "eval", "study-status"],
)
def test_an_error_message_is_printed_as_it_is_never_as_markup(tmp_path, argv, code, said):
    """An OrchError's message quotes what a user typed or a host printed: `[/]` in it once
    made Rich raise MarkupError (a traceback instead of the message), and `[red]` vanished."""
    (tmp_path / "configs").mkdir()
    proc = orch_cli(*argv, ORCH_PROJECT=str(tmp_path), NO_COLOR="1", COLUMNS="300")
    assert proc.returncode == code, proc.stderr  # README's exit codes: 2 bad command line, 3 config
    assert said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("error:") == 1 and proc.stdout == ""
