"""`orch study status NAME` without Typer, Rich or YAML (issue 14's status benchmark): which
command lines take the quick path, the plain table it prints, and the modules it imports."""

import json

import pytest
from test_quickstatus import NEVER, REPO, STATUS_MODULES, _modules_after, _project, unreachable_run

from orchestrator.commands import studystatus
from orchestrator.errors import ExitCode
from orchestrator.runs.study_status import RunView


@pytest.mark.parametrize(
    "argv, parsed",
    [
        (["study", "status", "s1"], ("s1", False, False)),
        (["-q", "study", "status", "s1", "--json"], ("s1", True, False)),
        (["study", "status", "--trust-new-host-key", "s1", "-q"], ("s1", False, True)),
    ],
)
def test_plain_study_status_command_lines_take_the_quick_path(argv, parsed):
    assert studystatus.parse(argv) == parsed


@pytest.mark.parametrize(
    "argv",
    [
        ["study", "status"],  # Typer says what is missing
        ["study", "status", "--help"],
        ["study", "status", "s1", "s2"],
        ["study", "status", "configs/studies/s1.yaml"],  # a file: its record is under the name inside it
        ["study", "status", "s1.yaml"],
        ["study", "status", "s1", "--bogus"],
        ["study", "run", "s1"],
        ["status", "s1"],
    ],
)
def test_anything_else_goes_to_typer(argv):
    assert studystatus.parse(argv) is None


def test_table_lines_up_and_shows_host_text_escaped():
    views = [
        RunView("gpt2", 0, "s-gpt2-s0", "running", 1, 2, "class-0 train 40/100", 90.0),
        RunView("mdlm", 1, "s-mdlm-s1", "failed", 1, 2, reason="class-1 failed: boom\x1b[2J\nfake row"),
        RunView("clf", 0, "s-clf-s0", "not launched"),
    ]
    lines = studystatus.render("s", views).splitlines()
    assert lines[0] == "study s" and lines[1].split() == ["run", "member", "seed", "state", "jobs", "progress", "ETA"]
    assert len(lines) == 3 + 3  # no host text starts a line of its own
    assert "\\x1b[2J\\nfake row" in lines[4] and "\x1b" not in "".join(lines)
    assert lines[3].split()[:5] == ["s-gpt2-s0", "gpt2", "0", "running", "1/2"]
    assert lines[5].split()[3:6] == ["not", "launched", "-"]
    coloured = studystatus.render("s", views, colour=True).splitlines()
    assert "\x1b[36mrunning\x1b[0m" in coloured[3] and "\x1b[31mfailed\x1b[0m (class-1" in coloured[4]


def test_orch_study_status_imports_what_orch_status_does_and_the_study_record(tmp_path):
    """A study of one run on an unreachable host and one not launched: the quick path runs
    (no Typer, Rich, YAML or config machinery), the host's run is `unknown` with the reason."""
    project = unreachable_run(tmp_path, "s-a-s0")
    runs = [{"member": "a", "seed": 0, "run_id": "s-a-s0"}, {"member": "b", "seed": 0, "run_id": "s-b-s0"}]
    study_dir = project.runs / "studies" / "s"
    study_dir.mkdir(parents=True)
    (study_dir / "study.json").write_text(json.dumps({"name": "s", "runs": runs}))
    out = tmp_path / "modules.json"
    proc = _modules_after(["orch", "study", "status", "s", "--json"], project.root, out)
    assert proc.returncode == 0, proc.stderr
    shown = {r["run_id"]: r for r in json.loads(proc.stdout)["runs"]}
    assert shown["s-a-s0"]["state"] == "unknown" and "cannot reach" in shown["s-a-s0"]["reason"]
    assert shown["s-b-s0"]["state"] == "not launched"
    names = set(json.loads(out.read_text()))
    ours = {n for n in names if n.split(".")[0] in ("orchestrator", "remote")}
    expected = (STATUS_MODULES - {"orchestrator.commands.quickstatus"}) | {
        "orchestrator.commands.quickstatus",  # tried first: not a plain `orch status`
        "orchestrator.commands.studystatus",
        "orchestrator.runs.study_status",
    }
    assert ours == expected, (sorted(ours - expected), sorted(expected - ours))
    tops = {n.split(".")[0] for n in names}
    assert not tops & set(NEVER), sorted(tops & set(NEVER))


def test_a_study_never_launched_is_one_message(tmp_path):
    project = _project(tmp_path / "p")
    proc = _modules_after(["orch", "study", "status", "nope"], project.root, tmp_path / "m.json")
    assert proc.returncode == ExitCode.RUN_STATE, proc.stderr
    assert proc.stderr.startswith("error: study 'nope' has not been launched"), proc.stderr
    assert "orch study run nope" in proc.stderr and "Traceback" not in proc.stderr


def test_a_run_whose_jobs_all_wait_in_slurms_queue_is_pending_with_the_reason():
    from orchestrator.backends.slurm import SlurmBackend
    from orchestrator.runs.state import job_row
    from orchestrator.runs.study_status import _view

    backend = SlurmBackend()
    queued = [
        job_row(
            {"name": n, "alive": True, "backend": {"job_id": i, "state": "PENDING", "reason": "Priority"}},
            0.0,
            "",
            backend,
        )
        for n, i in (("class-0", "1"), ("class-1", "2"))
    ]
    entry = {"member": "m", "seed": 0, "run_id": "r"}
    view = _view(entry, queued)
    assert view.state == "pending" and view.progress == "class-0: PENDING: Priority"
    requeued = job_row(
        {"name": "class-0", "alive": True, "status": {"state": "waiting", "reason": "requeued (1)"}, "backend": {}},
        0.0,
        "",
        backend,
    )
    assert _view(entry, [requeued, queued[1]]).state == "waiting"
    running = job_row({"name": "class-0", "alive": True, "status": {"state": "running"}}, 0.0, "", backend)
    assert _view(entry, [running, queued[1]]).state == "running"


def test_runs_whose_jobs_ran_on_the_cpu_say_so_after_their_state_and_under_the_table():
    """As `orch status` words a job given a GPU that ran on the CPU, for each run it concerns;
    the state word stays what it is (the run's results are not hidden)."""
    from orchestrator.runs.state import StatusRow
    from orchestrator.runs.study_status import _view

    entry = {"member": "m", "seed": 0, "run_id": "r0"}
    rows = [
        StatusRow(name="class-0", state="done", gpu="0", device="cpu"),
        StatusRow(name="class-1", state="done", gpu="1", device="cuda"),
        StatusRow(name="class-2", state="done", gpu="", device="cpu"),  # no GPU given: nothing to say
    ]
    view = _view(entry, rows, "fetched", host="nigel")
    assert view.ran_on_cpu == ["class-0"] and view.to_dict()["ran_on_cpu"] == ["class-0"]
    failed = RunView("m", 1, "r1", "failed", 0, 2, reason="class-1 failed: boom", ran_on_cpu=["class-0"], host="nigel")
    lines = studystatus.render("s", [view, failed, RunView("m", 2, "r2", "done", 2, 2)]).splitlines()
    assert lines[3].split()[3:8] == ["fetched", "(class-0", "ran", "on", "CPU)"]
    assert "failed (class-1 failed: boom; class-0 ran on CPU)" in lines[4] and "CPU" not in lines[5]
    assert lines[6:] == [
        f"{run}: class-0 given a GPU but ran on the CPU; unless the run asks for the CPU (train.device: cpu), torch "
        f"on nigel cannot use the GPU (`orch logs {run} class-0` says why): `orch bootstrap nigel` installs a CUDA "
        "build of torch"
        for run in ("r0", "r1")
    ]
    coloured = studystatus.render("s", [view], colour=True).splitlines()
    assert "\x1b[32mfetched\x1b[0m (class-0 ran on CPU)" in coloured[3]


def test_a_study_run_folder_holding_another_runs_record_is_not_that_run(tmp_path):
    """runs/s-a-s1 replaced by a copy of runs/s-a-s0 (cp -r): study status does not ask the host
    for it with the other run's record, and the report does not count the copy as seed 1."""
    import shutil

    from orchestrator.runs.study import member_runs
    from orchestrator.runs.study_status import status

    project = unreachable_run(tmp_path, "s-a-s0")
    shutil.copytree(project.runs / "s-a-s0", project.runs / "s-a-s1")
    record = {"name": "s", "runs": [{"member": "a", "seed": 1, "run_id": "s-a-s1"}]}

    def no_host(host):
        raise AssertionError(f"asked host {host}")

    (view,) = status(project, record, no_host)
    assert view.state == "unknown" and view.reason.startswith(f"{project.runs / 's-a-s1'} is a copy of run s-a-s0's")
    (mr,) = member_runs(project, record)
    assert mr.run_dir is None and "is a copy of run s-a-s0's folder" in mr.missing


def test_an_unchanged_study_file_costs_no_yaml_an_edited_one_is_named_and_a_deleted_run_is_known(tmp_path):
    """study.json keeps the study file's sha256: an unchanged file is not parsed; an edited one
    is named on stderr. A launched run whose folder is deleted stays launched (on its host)."""
    import shutil

    from orchestrator.config import studies
    from orchestrator.runs import study as running

    project = unreachable_run(tmp_path, "s-a-s0")
    (project.configs / "experiments").mkdir()
    shutil.copy(REPO / "configs" / "experiments" / "smoke.yaml", project.configs / "experiments")
    study_file = project.configs / "studies" / "s.yaml"
    study_file.parent.mkdir()
    study_file.write_text("base: smoke\nhost: box\nmembers:\n  a: {model.kind: ar}\n")
    running.save_record(project, studies.load(project, "s"))
    out = tmp_path / "modules.json"
    proc = _modules_after(["orch", "study", "status", "s", "--json"], project.root, out)
    assert proc.returncode == 0 and "note:" not in proc.stderr, proc.stderr
    assert "yaml" not in {n.split(".")[0] for n in json.loads(out.read_text())}
    facts = json.loads((project.studies / "s" / "study.json").read_text())["runs"][0]["launched"]
    assert facts["host"] == "box" and facts["workdir"] == "/w"  # learnt from the run's folder

    study_file.write_text(study_file.read_text() + "  b: {model.kind: ar}\n")
    proc = _modules_after(["orch", "study", "status", "s"], project.root, out)
    assert proc.returncode == 0, proc.stderr
    assert f"note: {study_file} differs from what study s recorded (1):" in proc.stderr
    assert "added member b: not launched: `orch study run s` launches it" in proc.stderr

    shutil.rmtree(project.runs / "s-a-s0")
    proc = _modules_after(["orch", "study", "status", "s", "--json"], project.root, out)
    (view,) = json.loads(proc.stdout)["runs"]
    assert view["state"] == "unknown" and view["reason"].startswith(
        "no local record; launched on box: `orch study fetch s` restores its folder from box; cannot reach"
    ), view


def test_the_pretrain_jobs_progress_names_it_once():
    """It showed `pretrain pretrain 30/30` (the job's name, then its phase)."""
    from orchestrator.runs.state import StatusRow
    from orchestrator.runs.study_status import _view

    entry = {"member": "m", "seed": 0, "run_id": "r"}
    pretrain = StatusRow(name="pretrain", state="running", phase="pretrain", step=30, total=30)
    assert _view(entry, [pretrain]).progress == "pretrain 30/30"
    train = StatusRow(name="class-0", state="running", phase="train", step=5, total=60)
    assert _view(entry, [train]).progress == "class-0 train 5/60"
