"""Every command answers --help, as a user would call it (a fresh process each)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import timing
from orchcli import orch_cli

from orchestrator.cli import COMMAND_MODULES

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    sorted(COMMAND_MODULES)
    + ["hosts list", "hosts check", "hosts show"]
    + [f"study {c}" for c in ("run", "status", "fetch", "report", "resume")],
)
def test_help(command):
    proc = orch_cli(*command.split(), "--help")
    assert proc.returncode == 0, proc.stderr
    assert f"orch {command}" in " ".join(proc.stdout.split())


def test_unknown_command_and_option_are_usage_errors():
    for argv in (
        ["nosuch"],
        ["status", "--bogus"],
        ["status", "r", "--watch", "--interval", "0"],
        ["logs", "r", "-f", "-n", "-1"],  # was passed on to the host helper, which dropped a byte
    ):
        proc = orch_cli(*argv)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (argv, proc.stderr)


@pytest.mark.parametrize("command", sorted(COMMAND_MODULES) + ["hosts check"])
def test_help_shows_metavars_not_python_types(command):
    proc = orch_cli(*command.split(), "--help", COLUMNS="200")
    assert proc.returncode == 0, proc.stderr
    for python_type in ("<bool>", "<str>", "<int>", "<float>", "<list", "<path>", "[[", "...."):
        assert python_type not in proc.stdout, (python_type, proc.stdout)
    usage = next(line for line in proc.stdout.splitlines() if "Usage:" in line)
    assert "{" not in usage, usage  # EXPERIMENT, not Typer's {EXPERIMENT}
    assert "--quiet" in proc.stdout or command in ("hosts", "data", "study")  # groups: their commands take it


def test_root_help_lists_the_exit_codes():
    from orchestrator.errors import ExitCode

    proc = orch_cli("--help", COLUMNS="400")
    text = " ".join(proc.stdout.split())
    assert "Exit codes: 0 success;" in text
    for code in ExitCode:
        assert f"{int(code)} " in text
    assert "--quiet" in text and "stdout" in text and "stderr" in text


def test_readme_exit_code_table_matches_the_code():
    import re

    from orchestrator.errors import exit_code_table

    readme = (REPO / "README.md").read_text()
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", readme, flags=re.M)
    assert [(int(c), m.replace("`", "")) for c, m in rows] == [(int(c), m) for c, m in exit_code_table()]


def test_root_help_table_matches_the_commands_own_help():
    """`orch --help` is printed from cli.COMMANDS without loading Typer: each summary
    there must be the first sentence of the command's own help, and no command missing."""
    import typer

    from orchestrator.cli import COMMANDS
    from orchestrator.commands import app as typer_app

    typer_app.register_commands(["--help"])  # every command module
    group = typer.main.get_command(typer_app.app)
    assert sorted(group.commands) == sorted(COMMANDS)
    for name, (_, summary) in COMMANDS.items():
        own = " ".join((group.commands[name].help or "").split("\n\n")[0].split())
        assert own == summary, name


def test_root_help_loads_no_command_machinery():
    """Issue 15: `orch --help` costs the interpreter's start-up, not Typer's and Rich's."""
    code = (
        "import sys, runpy; sys.argv = ['orch', '--help']; import orchestrator.cli as c; c.main(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('typer', 'click', 'rich', 'yaml', 'paramiko', 'remote', 'orchestrator')), file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timing.scaled(60)
    )
    assert proc.returncode == 0, proc.stderr
    assert "Exit codes: 0 success;" in proc.stdout and "fetch-results" in proc.stdout
    assert proc.stderr.strip() == "['orchestrator', 'orchestrator.cli', 'orchestrator.commands', 'orchestrator.errors']"


def test_a_launch_loads_no_evaluation_machinery(tmp_path):
    """`orch run` without --wait only launches: numpy and the evaluation modules (~0.3 s
    CPU) are for --wait's evaluation.  --dry-run takes the same path up to the launch."""
    code = (
        "import sys, runpy, atexit\n"
        "atexit.register(lambda: print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'scipy')"
        " or m.startswith('orchestrator.results')), file=sys.stderr))\n"
        "sys.argv = ['orch', 'run', 'smoke', '--dry-run']\n"
        "runpy.run_module('orchestrator.cli', run_name='__main__')\n"
    )
    project = tmp_path / "p"  # a copy: the launch path caches host facts in the project's .orch/
    for part in ("configs", "remote"):
        shutil.copytree(REPO / part, project / part, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "ORCH_SSH_CONFIG": str(tmp_path / "none")}
    env.pop("ORCH_PROJECT", None)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True, timeout=timing.scaled(60)
    )
    assert proc.returncode == 0, proc.stderr
    assert "would launch" in proc.stdout + proc.stderr or "session orch-smoke" in proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr[-2000:]


def test_smoke_refuses_a_wrong_set_before_asking_the_host():
    proc = orch_cli("smoke", "nosuchhost", "--set", "train.stpes=3")
    # exit 3 for the config (not 1 for a failed check, nor an unknown-host error first)
    assert proc.returncode == 3 and "unknown key 'train.stpes'" in proc.stderr and "Traceback" not in proc.stderr


def test_a_shared_option_reads_the_same_in_every_command():
    """--trust-new-host-key is one definition (commands/options.py): five copies had drifted
    into three help texts."""
    import typer

    from orchestrator.commands import app as typer_app

    typer_app.register_commands(["--help"])  # every command module

    def commands(cmd, path):
        if hasattr(cmd, "commands"):  # a group (hosts, study, data)
            for name, sub in cmd.commands.items():
                yield from commands(sub, f"{path} {name}")
        else:
            yield path, cmd

    helps = {
        path: p.help
        for path, cmd in commands(typer.main.get_command(typer_app.app), "orch")
        for p in cmd.params
        if "--trust-new-host-key" in getattr(p, "opts", ())
    }
    assert {"orch hosts check", "orch bootstrap", "orch smoke", "orch run", "orch study run"} <= set(helps)
    assert len(set(helps.values())) == 1, helps


def test_logs_help_does_not_say_ssh_for_every_host():
    """Host `local`'s logs are read on this machine, without SSH."""
    proc = orch_cli("logs", "--help")
    assert "on this machine for host `local`" in " ".join(proc.stdout.split()), proc.stdout
