"""`orch status` without Typer, Rich or YAML (issue 15): which command lines take the quick
path, the plain table it prints (host text is untrusted), and the modules it imports."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import timing
import yaml

from orchestrator import backends
from orchestrator.commands import quickstatus
from orchestrator.commands.statustable import render, width
from orchestrator.config.hosts import _cache_file, resolve_host
from orchestrator.config.project import Project
from orchestrator.contract import records
from orchestrator.errors import OrchError
from orchestrator.runs.state import StatusRow
from orchestrator.terminal import visible

REPO = Path(__file__).resolve().parents[2]
TMUX = backends.get("tmux")


# -- which command lines are the quick path's -------------------------------------------


@pytest.mark.parametrize(
    "argv, parsed",
    [
        (["status"], (None, False, False)),
        (["status", "r1"], ("r1", False, False)),
        (["status", "r1", "--json"], ("r1", True, False)),
        (["-q", "status", "--json", "r1", "--quiet"], ("r1", True, False)),
        (["--quiet", "status", "r1", "--trust-new-host-key"], ("r1", False, True)),
    ],
)
def test_plain_status_command_lines_take_the_quick_path(argv, parsed):
    assert quickstatus.parse(argv) == parsed


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--help"],
        ["status", "r1", "--watch"],
        ["status", "r1", "-w"],
        ["status", "r1", "--interval", "3"],
        ["status", "r1", "r2"],  # Typer says "unexpected extra argument"
        ["status", "--bogus"],
        ["status", "--", "r1"],
        ["runs"],
        ["study", "status", "s1"],
        ["--version", "status"],
    ],
)
def test_anything_else_goes_to_typer(argv):
    """Help, the live view and every usage error stay Typer's (one message, exit 2)."""
    assert quickstatus.parse(argv) is None


# -- the table ------------------------------------------------------------------------------


def _rows():
    return [
        StatusRow(
            name="class-0",
            state="running",
            gpu="0",
            phase="train",
            step=10,
            total=100,
            loss=1.23456,
            tokens_per_s=12345.6,
            eta_s=90,
            elapsed_s=30,
        ),
        StatusRow(name="class-1", state="failed", gpu="1", reason="exit code 1: [bold red]boom[/]"),
    ]


def test_table_has_the_title_line_and_the_columns():
    text = render("r1", "testhost", _rows(), backends.get("tmux"))
    lines = text.splitlines()
    assert lines[0] == "r1 on testhost: running"
    assert lines[1].split() == ["job", "GPU", "state", "phase", "step/total", "loss", "tokens/s", "ETA", "elapsed"]
    assert lines[3].split()[:7] == ["class-0", "0", "running", "train", "10/100", "1.2346", "12,346"]
    assert "failed (exit code 1: [bold red]boom[/])" in lines[4]  # markup is text
    assert "\x1b" not in text  # no colour unless asked for
    assert all(line == line.rstrip() for line in lines)


def test_columns_line_up_by_display_width():
    rows = [
        StatusRow(name="class-0", state="failed", phase="P0", reason="日本語のエラー"),  # two columns each
        StatusRow(name="class-1", state="failed", phase="P1", reason="e\u0301e\u0301"),  # combining: none
        StatusRow(name="class-2", state="done", phase="P2"),
    ]
    lines = render("r", "h", rows, TMUX).splitlines()[1:]
    at = width(lines[0][: lines[0].index("phase")])
    for line in lines[2:]:
        assert width(line[: line.index(" P") + 1]) == at, line
    assert width("日本") == 4 and width("e\u0301") == 1 and width("abc") == 3


def test_control_characters_from_the_host_are_shown_escaped():
    """A reason with a newline cannot forge a row; an escape sequence cannot reach the terminal."""
    rows = [
        StatusRow(name="class-0", state="failed", gpu="0\x1b[2J", reason="oops\nclass-9  done\r\x07\x9b"),
        StatusRow(name="class-1", state="done"),
    ]
    text = render("r1", "host\x1b]0;x\x07", rows, TMUX)
    lines = text.splitlines()
    assert len(lines) == 5, lines
    assert not any(ch in text for ch in "\x1b\r\x07\x9b")
    assert "oops\\nclass-9  done\\r\\x07\\x9b" in lines[3] and "0\\x1b[2J" in lines[3]
    assert lines[0] == "r1 on host\\x1b]0;x\\x07: failed"
    assert visible("plain") == "plain" and visible("a\tb") == "a\\tb"
    # Nor can a bidi override reorder the rest of the line, or a zero-width space hide in it.
    text = render("r1", "h", [StatusRow(name="class-0", state="failed", reason="\u202egnp.exe\u200b\u2028x")], TMUX)
    assert "\u202e" not in text and "\u200b" not in text and "\u2028" not in text
    assert "failed (\\u202egnp.exe\\u200b\\u2028x)" in text


def test_colour_marks_only_the_state_word_and_resets():
    text = render("r1", "h", _rows(), TMUX, colour=True)
    assert "\x1b[36mrunning\x1b[0m" in text and "\x1b[31mfailed\x1b[0m (exit code 1" in text
    plain = render("r1", "h", _rows(), TMUX)
    assert text.replace("\x1b[36m", "").replace("\x1b[31m", "").replace("\x1b[0m", "") == plain


def test_slurm_id_and_requeues_columns_appear_when_they_apply():
    rows = [StatusRow(name="class-0", state="running", backend={"job_id": "4711"}, requeues=2)]
    lines = render("r", "c", rows, backends.get("slurm")).splitlines()
    assert lines[1].split()[:3] == ["job", "Slurm", "id"] and lines[1].split()[-1] == "requeues"
    assert lines[3].split()[1] == "4711" and lines[3].split()[-1] == "2"


def test_watch_view_shows_the_same_lines():
    from rich.console import Console

    from orchestrator.commands.runs import status_table

    console = Console(width=300, record=True, force_terminal=True)
    console.print(status_table("r1", "h", _rows(), TMUX))
    assert console.export_text().splitlines() == render("r1", "h", _rows(), TMUX).splitlines()


# -- what it reads locally ------------------------------------------------------------------


def test_planned_jobs_come_from_local_json_and_old_runs_fall_back_to_run_yaml(tmp_path):
    jobs = [{"name": "class-0", "gpu": "0", "seed": 1}, {"name": "class-1", "gpu": ""}]
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"experiment": {}, "jobs": jobs}))
    assert records.planned_jobs(tmp_path, {}) == jobs  # launched before local.json kept them
    summary = records.job_summary(jobs)
    assert summary == [{"name": "class-0", "gpu": "0"}, {"name": "class-1", "gpu": ""}]
    (tmp_path / "run.yaml").write_text("not: [yaml")  # not read when local.json has them
    assert records.planned_jobs(tmp_path, {"planned_jobs": summary}) == summary
    with pytest.raises(OrchError):
        records.planned_jobs(tmp_path, {"planned_jobs": [{"name": 5}]})  # a broken list: run.yaml decides


def _project(tmp_path: Path) -> Project:
    for d in ("configs/hosts", "remote", "runs"):
        (tmp_path / d).mkdir(parents=True)
    return Project(tmp_path)


def test_host_config_is_cached_for_its_exact_text(tmp_path):
    project = _project(tmp_path)
    path = tmp_path / "configs" / "hosts" / "box.yaml"
    path.write_text("hostname: gpu1.example.org\nport: 2222\nslurm:\n  partition: gpu\n")
    first = resolve_host(project, "box")
    assert _cache_file(project, "box").is_file()
    again = resolve_host(project, "box")
    assert again == first and again.slurm.partition == "gpu" and again.port == 2222
    path.write_text("hostname: gpu2.example.org\n")  # edited: the cache is not used
    assert resolve_host(project, "box").hostname == "gpu2.example.org"
    cached = json.loads(_cache_file(project, "box").read_text())
    cached["host"]["workdir"] = "/evil\nx"  # a cache that no file would give is checked too
    _cache_file(project, "box").write_text(json.dumps(cached))
    assert resolve_host(project, "box").workdir == "~/orch"
    _cache_file(project, "box").write_text("{not json")
    assert resolve_host(project, "box").hostname == "gpu2.example.org"


# -- what it imports --------------------------------------------------------------------------

# Issue 15: everything a plain `orch status` over SSH imports of the project's modules.  The
# integration test tests/integration/test_run_lifecycle.py::test_run_status_logs_fetch checks
# the same against a real run; this one needs no sshd (the host refuses the connection,
# after every module of the path is loaded).  A change that adds one must say why here.
STATUS_MODULES = {
    "orchestrator",
    "orchestrator.backends",
    "orchestrator.backends.base",
    "orchestrator.backends.tmux",
    "orchestrator.commands",
    "orchestrator.commands.quickpath",  # the plain command line, errors as Typer prints them
    "orchestrator.commands.quickstatus",
    "orchestrator.commands.statustable",
    "orchestrator.config",
    "orchestrator.config.hosts",
    "orchestrator.config.project",
    "orchestrator.config.slurm",  # HostConfig's slurm: block (the checks only)
    "orchestrator.contract",
    "orchestrator.contract.hostdocs",  # the host's reply is checked against the contract
    "orchestrator.contract.records",
    "orchestrator.errors",
    "orchestrator.localfiles",  # local.json's write, a refused one said as one message
    "orchestrator.runs",
    "orchestrator.runs.hostops",
    "orchestrator.terminal",  # host text (reasons, errors quoting the host) shown without its controls
    "orchestrator.runs.state",
    "orchestrator.transport",
    "orchestrator.transport.base",
    "orchestrator.transport.connect",
    "orchestrator.transport.diskspace",
    "orchestrator.transport.knownhosts",
    "orchestrator.transport.portcheck",
    "orchestrator.transport.proxyjump",
    "orchestrator.transport.shell",
    "orchestrator.transport.ssh",
    "orchestrator.config.sshconfig",  # Paramiko without Invoke
    "remote",
    "remote.files",  # local.json is written atomically
    "remote.jobstate",
}
# invoke: Paramiko imports it for `Match exec` in SSH config files only (config/sshconfig.py);
# with it would come its vendored YAML.
NEVER = (
    "typer",
    "click",
    "rich",
    "pydantic",
    "numpy",
    "torch",
    "transformers",
    "scipy",
    "sklearn",
    "matplotlib",
    "invoke",
    "yaml",
)


def _modules_after(argv, cwd: Path, out: Path) -> subprocess.CompletedProcess:
    code = (
        "import atexit, json, runpy, sys\n"
        f"atexit.register(lambda: open({str(out)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
        f"sys.argv = {argv!r}\n"
        "runpy.run_module('orchestrator.cli', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "ORCH_SSH_CONFIG": str(cwd / "no-ssh-config")}
    env.pop("ORCH_PROJECT", None)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timing.scaled(60)
    )


def unreachable_run(tmp_path: Path, run_id: str) -> Project:
    """A project with run RUN_ID on host `box`, which refuses connections (after every module
    of a status path is loaded), its host file cached as `orch run` leaves it."""
    project = _project(tmp_path / "p")
    with socket.socket() as s:  # a port nobody listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = tmp_path / "id_test"
    key.write_text("not a key: the connection fails before it is read\n")
    (project.configs / "hosts" / "box.yaml").write_text(
        yaml.safe_dump({"hostname": "127.0.0.1", "port": port, "identity_file": str(key), "connect_timeout": 5})
    )
    run_dir = project.runs / run_id
    run_dir.mkdir()
    (run_dir / "run.yaml").write_text(f"run_id: {run_id}\n")
    jobs = [{"name": "class-0", "gpu": "0"}]
    records.save_record(
        run_dir, {"run_id": run_id, "host": "box", "workdir": "/w", "code_hash": "abc", "planned_jobs": jobs}
    )
    resolve_host(project, "box")  # as `orch run` left it: the host file's values cached
    return project


def test_orch_status_imports_exactly_these_modules(tmp_path):
    project = unreachable_run(tmp_path, "r1")
    out = tmp_path / "modules.json"
    proc = _modules_after(["orch", "status", "r1"], project.root, out)
    assert proc.returncode == 5 and "cannot reach" in proc.stderr, proc.stderr  # UNREACHABLE, as always
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    names = set(json.loads(out.read_text()))
    ours = {n for n in names if n.split(".")[0] in ("orchestrator", "remote")}
    assert ours == STATUS_MODULES, (sorted(ours - STATUS_MODULES), sorted(STATUS_MODULES - ours))
    tops = {n.split(".")[0] for n in names}
    assert not tops & set(NEVER), sorted(tops & set(NEVER))


def test_run_wait_backs_off_while_nothing_changes_and_returns_at_once_on_a_change():
    from orchestrator.commands.runs import Backoff

    pace = Backoff(1.0, 10.0)
    same = [("running", "train", 50)]
    delays = [pace.after(same) for _ in range(8)]
    assert delays[0] == 1.0 and delays == sorted(delays) and delays[-1] == 10.0
    assert pace.after([("running", "train", 100)]) == 1.0  # a step moved: back to the base
    steady = Backoff(2.0, 2.0)  # `status --watch --interval 2`: the user's interval, always
    assert {steady.after(same) for _ in range(5)} == {2.0}


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1, 2]", "is not a run record: a JSON object was expected, found list"),
        ('{"host": 3, "workdir": "/w", "code_hash": "abc"}', "does not say where the run is: 'host'"),
        ('{"host": "box", "workdir": "/w"}', "does not say where the run is: 'code_hash'"),
        ("{bad", "is damaged: not valid JSON (Expecting property name"),
    ],
)
def test_a_damaged_local_json_is_one_message_for_status_and_listed_as_unreadable(tmp_path, text, message):
    # A hand-edited local.json once reached `orch status` as AttributeError: 'list' object
    # has no attribute 'get'.
    project = unreachable_run(tmp_path, "r1")
    (project.runs / "r1" / "local.json").write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "status", "r1"],
        cwd=project.root,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=timing.scaled(60),
    )
    assert proc.returncode == 8 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_orch_runs_reads_a_partial_record_but_not_a_wrong_typed_one(tmp_path):
    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    (run_dir / "local.json").write_text('{"host": "box", "experiment": "smoke"}')
    assert records.load_record(run_dir, to_reach=False) == {"host": "box", "experiment": "smoke"}
    (run_dir / "local.json").write_text('{"host": ["box"]}')
    with pytest.raises(OrchError, match="does not say where the run is: 'host'"):
        records.load_record(run_dir, to_reach=False)


def test_a_run_whose_jobs_are_all_queued_says_pending_not_running():
    """People read `pending` / `waiting`; scripts keep run_state's "running" (not ended yet)."""
    from orchestrator.commands.statustable import render
    from orchestrator.runs.state import StatusRow, listed_state, run_state, shown_state

    queued = [StatusRow(name="class-0", state="pending"), StatusRow(name="class-1", state="pending")]
    waits = [StatusRow(name="pretrain", state="done"), StatusRow(name="class-0", state="waiting")]
    busy = [StatusRow(name="class-0", state="running"), StatusRow(name="class-1", state="pending")]
    assert [run_state(r) for r in (queued, waits, busy)] == ["running"] * 3
    assert [shown_state(r) for r in (queued, waits, busy)] == ["pending", "waiting", "running"]
    assert listed_state("launched", queued) == "pending"
    assert render("r1", "cluster", queued, TMUX).splitlines()[0].startswith("r1 on cluster: pending")
