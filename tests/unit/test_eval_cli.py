"""`orch eval` / `orch compare` through the real Typer app (and cli.main for exit codes)."""

from __future__ import annotations

import json
import os
import sys

import pytest
from typer.testing import CliRunner

from orchestrator import cli
from orchestrator.errors import ExitCode, OrchError
from tests.unit.evalruns import make_run, margin_texts

runner = CliRunner()


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "remote").mkdir()
    monkeypatch.setenv("ORCH_PROJECT", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "140")
    return tmp_path


def invoke(*args):
    return runner.invoke(cli.app, list(args))


def failure(result) -> OrchError:
    assert result.exit_code != 0
    assert isinstance(result.exception, OrchError), result.output
    return result.exception


def test_eval_named_run(project):
    run_dir = make_run(project, "r1")
    result = invoke("eval", "r1", "--no-plots")
    assert result.exit_code == 0, result.output
    assert "Acceptable" in result.output and "70.00%" in result.output and "per-token NLL" in result.output
    assert json.loads((run_dir / "metrics.json").read_text())["accuracy"] == pytest.approx(0.7)
    assert (run_dir / "predictions.csv").is_file() and (run_dir / "report.md").is_file()
    assert not (run_dir / "plots").exists()


def test_eval_refuses_a_tampered_tokenizer_fingerprint(project, monkeypatch, capsys):
    run_dir = make_run(project, "r1")
    manifest = run_dir / "jobs" / "c0" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "tokenizer_sha256": "0" * 64}))
    err = failure(invoke("eval", "r1", "--no-plots"))
    assert err.code == ExitCode.DATA and "same tokenizer" in err.message and "'c0'" in err.message
    # through cli.main: one message, no traceback, the data exit code
    monkeypatch.setattr(sys, "argv", ["orch", "eval", "r1", "--no-plots"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == ExitCode.DATA
    printed = capsys.readouterr().err
    assert "same tokenizer" in printed and "Traceback" not in printed
    assert not (run_dir / "metrics.json").exists()


def test_eval_defaults_to_the_newest_run(project):
    old = make_run(project, "old")
    new = make_run(project, "new", margin_texts({"0": [-1, -1], "1": [1, 1]}))
    os.utime(old / "run.yaml", (1_000_000_000, 1_000_000_000))
    os.utime(new / "run.yaml", (1_100_000_000, 1_100_000_000))
    result = invoke("eval", "--no-plots", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["run_id"] == "new"
    assert not (old / "metrics.json").exists()


def test_eval_overrides_and_bad_options(project):
    make_run(project, "r1", train_texts={"0": 100, "1": 100})
    assert invoke("eval", "r1", "--no-plots", "--prior", "train", "--bands", "mdlm").exit_code == 0
    metrics = json.loads((project / "runs" / "r1" / "metrics.json").read_text())
    assert metrics["prior"]["mode"] == "train" and metrics["verdict"]["bands"] == "mdlm"
    err = failure(invoke("eval", "r1", "--prior", "flat"))
    assert err.code == ExitCode.USAGE and "--prior" in err.message and "flat" in err.message


def test_eval_unknown_run(project):
    make_run(project, "r1")
    err = failure(invoke("eval", "nope"))
    assert err.code == ExitCode.RUN_STATE and "no run named 'nope'" in err.message
    err = failure(invoke("eval", "../etc"))
    assert err.code == ExitCode.USAGE


def test_eval_no_runs(project):
    err = failure(invoke("eval"))
    assert "no runs yet" in err.message


def test_eval_below_min_accuracy_fails_after_writing(project):
    run_dir = make_run(project, "r1", eval_cfg={"min_accuracy": 0.9})
    err = failure(invoke("eval", "r1", "--no-plots"))
    assert err.code == ExitCode.FAILED and "below eval.min_accuracy" in err.message
    assert (run_dir / "metrics.json").is_file()


def test_main_prints_one_message_and_exits_with_the_code(project, monkeypatch, capsys):
    make_run(project, "bad", rows_hook=lambda job, rows: rows[1:] if job == "c1" else rows)
    monkeypatch.setattr(sys, "argv", ["orch", "eval", "bad", "--no-plots"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == ExitCode.DATA
    err = capsys.readouterr().err
    assert "error:" in err and "'c1'" in err and "0/0" in err and "hint:" in err
    assert "Traceback" not in err


def test_compare_cli(project):
    make_run(project, "a", margin_texts({"0": [1, -1, -1, -1, -1, -1], "1": [-1, 1, 1, 1, 1, 1]}))
    make_run(project, "b", margin_texts({"0": [1, -1, -1, -1, -1, -1], "1": [1, -1, -1, -1, -1, -1]}), kind="mdlm")
    make_run(project, "c", margin_texts({"0": [1, -1], "1": [1, -1]}))
    result = invoke("compare", "a", "b")
    assert result.exit_code == 0, result.output
    assert "McNemar" in result.output and "0.2188" in result.output and "mdlm" in result.output
    assert "Holm" not in result.output  # one pair: nothing to adjust
    # a difference between two runs is not one between methods: the seeds' luck is not in it
    assert "moves from seed to seed is not measured here; `orch study`" in " ".join(result.output.split())
    make_run(project, "d", margin_texts({"0": [1, 1, -1, -1, -1, -1], "1": [-1, 1, 1, 1, 1, 1]}))
    three = invoke("compare", "a", "b", "d")
    assert three.exit_code == 0 and "p (Holm)" in three.output and "3 comparisons" in three.output
    data = json.loads(invoke("compare", "a", "b", "--json").output)
    assert data["pairs"][0]["p_value"] == pytest.approx(14 / 64)
    err = failure(invoke("compare", "a", "c"))
    assert "different test sets" in err.message and err.code == ExitCode.DATA
    result = invoke("compare", "a", "c", "--force")
    assert result.exit_code == 0 and "4 shared test texts" in result.output
    assert failure(invoke("compare", "a", "zzz")).code == ExitCode.RUN_STATE
    assert not list((project / "runs").rglob("metrics.json"))  # compare writes nothing


def test_compare_of_runs_on_different_test_sets_exits_with_the_data_code(project, monkeypatch, capsys):
    """The command line is right, the runs' data do not fit together: exit 9 (README, "exit
    codes": input data / inconsistent scores), as a study report of such runs does, never
    typer's usage code 2."""
    make_run(project, "a", margin_texts({"0": [1, -1, -1, -1, -1, -1], "1": [-1, 1, 1, 1, 1, 1]}))
    make_run(project, "c", margin_texts({"0": [1, -1], "1": [1, -1]}))
    make_run(project, "e", [("x/0", "0", {"0": (1.0, 5), "1": (2.0, 5)}), ("x/1", "1", {"0": (2.0, 5), "1": (1.0, 5)})])
    for other, said in (("c", "different test sets"), ("e", "share no test ids")):
        monkeypatch.setattr(sys, "argv", ["orch", "compare", "a", other])
        with pytest.raises(SystemExit) as info:
            cli.main()
        assert info.value.code == ExitCode.DATA == 9
        err = capsys.readouterr().err
        assert err.startswith("error: ") and said in err and "hint:" in err and "Traceback" not in err


def test_compare_needs_a_run(project):
    result = invoke("compare")
    assert result.exit_code != 0 and "Missing argument" in result.output


DEFAULT_IDS = ("smoke-20261126-031341", "smoke-20261126-031342")  # differ only at the end


def _two_default_named_runs(project):
    texts = margin_texts({"0": [1, -1, -1, -1, -1, -1], "1": [-1, 1, 1, 1, 1, 1]})
    return [make_run(project, name, texts, kind="mdlm", init="distilgpt2") for name in DEFAULT_IDS]


def test_compare_table_shows_whole_run_ids_at_80_columns(project):
    from rich.console import Console

    from orchestrator.commands.results_view import print_comparison
    from orchestrator.results.compare import compare_runs

    dirs = _two_default_named_runs(project)
    console = Console(width=80, record=True)
    print_comparison(console, compare_runs(list(zip(DEFAULT_IDS, dirs))))
    text = console.export_text()
    for name in DEFAULT_IDS:
        assert text.count(name) == 2, text  # the runs table and the McNemar pair
    assert max(len(line) for line in text.splitlines()) <= 80


def test_runs_table_shows_whole_run_ids_at_80_columns(project, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # what a pipe or a small terminal gets
    _two_default_named_runs(project)
    result = invoke("runs")
    assert result.exit_code == 0, result.output
    for name in DEFAULT_IDS:
        assert name in result.output, result.output
    # evaluated: the accuracy as a percentage, as `orch eval` and `orch compare` print it
    assert invoke("eval", DEFAULT_IDS[0]).exit_code == 0
    listed = invoke("runs").output
    line = next(li for li in listed.splitlines() if DEFAULT_IDS[0] in li)
    assert "83.33%" in line and "0.8333" not in line, listed


def _launched_not_fetched(project, name, job_states):
    """A run as `orch run` leaves it locally, after `orch status` recorded job_states."""
    run_dir = make_run(project, name)
    for status in run_dir.glob("jobs/*/status.json"):
        status.unlink()  # nothing fetched yet
    record = json.loads((run_dir / "local.json").read_text())
    record.update(state="launched", job_states=job_states)
    (run_dir / "local.json").write_text(json.dumps(record))
    return run_dir


def test_runs_shows_the_job_states_status_recorded(project):
    _launched_not_fetched(project, "all-done", {"c0": "done", "c1": "done"})
    _launched_not_fetched(project, "one-failed", {"c0": "done", "c1": "failed"})
    _launched_not_fetched(project, "busy", {"c0": "done", "c1": "running"})
    _launched_not_fetched(project, "stopped", {"c0": "done", "c1": "cancelled"})
    _launched_not_fetched(project, "half-seen", {"c0": "done"})  # c1 never seen: no claim about the run
    _launched_not_fetched(project, "never-seen", {})
    make_run(project, "got")
    record = json.loads((project / "runs" / "got" / "local.json").read_text())
    (project / "runs" / "got" / "local.json").write_text(json.dumps({**record, "state": "fetched"}))
    result = invoke("runs", "--json")
    assert result.exit_code == 0, result.output
    states = {item["run"]: item["state"] for item in json.loads(result.output)}
    assert states == {
        "all-done": "done",
        "one-failed": "failed",
        "busy": "running",
        "stopped": "cancelled",
        "half-seen": "launched",
        "never-seen": "launched",
        "got": "fetched",
    }


def test_follow_hint_names_two_commands_not_a_pipe():
    from orchestrator.commands.runs import follow_hint

    hint = follow_hint("smoke-20261126-031341")
    assert "|" not in hint
    assert "orch status smoke-20261126-031341 --watch, or orch logs smoke-20261126-031341 JOB -f" in hint


def test_record_updates_never_undo_another_commands_change(project):
    """A `status --watch` holding a copy read before a fetch or a cancel must not put the
    old state back; `orch runs` then shows the states seen after the last fetch."""
    import threading

    from orchestrator.commands.quickstatus import remember
    from orchestrator.contract import records
    from orchestrator.runs.state import StatusRow

    run_dir = make_run(project, "lu1")
    stale = records.load_record(run_dir, to_reach=False)  # what the watch read when it started
    # a partial fetch meanwhile: its copy of the jobs says one is still running
    records.update_record(run_dir, {"state": "partial", "fetched_at": 100.0, "job_states": {"c0": "done"}})
    (run_dir / "jobs" / "c1" / "status.json").write_text(json.dumps({"state": "running", "started": 1.0}))
    remember(run_dir, stale, [StatusRow(name="c0", state="done"), StatusRow(name="c1", state="cancelled")])
    now = json.loads((run_dir / "local.json").read_text())
    assert now["state"] == "partial" and now["fetched_at"] == 100.0
    assert now["job_states"] == {"c0": "done", "c1": "cancelled"} and now["job_states_at"] > 100.0
    (item,) = json.loads(invoke("runs", "--json").output)
    assert item["jobs"] == {"c0": "done", "c1": "cancelled"} and item["state"] == "cancelled"

    # many writers at once, each its own key: none is lost
    def write(i):
        for j in range(20):
            records.update_record(run_dir, {f"k{i}": j})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = records.load_record(run_dir, to_reach=False)
    assert [final[f"k{i}"] for i in range(4)] == [19] * 4 and final["state"] == "partial"


def test_folders_that_are_not_whole_runs_are_listed_with_what_to_do(project):
    from orchestrator.config.project import Project

    (project / "runs" / "killed").mkdir(parents=True)  # a launch killed before it recorded anything
    half = make_run(project, "half")
    (half / "run.yaml").unlink()
    older, newer = make_run(project, "older"), make_run(project, "newer")
    for run_dir, at in ((older, 100.0), (newer, 200.0)):
        record = json.loads((run_dir / "local.json").read_text())
        (run_dir / "local.json").write_text(json.dumps({**record, "launched_at": at}))
    os.utime(older / "run.yaml")  # touched after the newer run: still the older launch
    assert Project(project).existing_run(None) == newer
    listed = {it["run"]: it for it in json.loads(invoke("runs", "--json").output)}
    assert listed["killed"]["state"] == "unreadable" and "is an empty folder" in listed["killed"]["error"]
    assert "has no run.yaml" in listed["half"]["error"]
    table = invoke("runs").output
    assert "killed: " in table and "is an empty folder" in table
    for args in (["eval", "killed"], ["eval", "half"]):
        err = failure(invoke(*args))
        assert err.code == ExitCode.RUN_STATE and "no run named" not in err.message
    assert "rmdir" in failure(invoke("eval", "killed")).hint
    assert "copy it back here" in failure(invoke("eval", "half")).hint


def test_drop_previous_says_every_runs_outcome_before_it_fails(project):
    """`orch runs --drop-previous A --drop-previous B --json` where B is refused (its
    previous/ is a link): A's copies are removed all the same, the JSON says so and names
    B's refusal, and the command then fails with B's message (exit 8)."""
    a, b = make_run(project, "a"), make_run(project, "b")
    (a / "previous" / "20260101-000000Z" / "jobs").mkdir(parents=True)
    (project / "elsewhere").mkdir()
    (b / "previous").symlink_to(project / "elsewhere", target_is_directory=True)
    result = invoke("runs", "--drop-previous", "a", "--drop-previous", "b", "--drop-previous", "c", "--json")
    err = failure(result)
    assert err.code == ExitCode.RUN_STATE
    assert "is not a folder (a link or a file)" in err.message and "no run named 'c'" in err.message
    said = json.loads(result.stdout)
    assert said[0] == {"run": "a", "removed": ["20260101-000000Z"], "freed_bytes": 0, "left": []}
    assert said[1]["run"] == "b" and "is not a folder" in said[1]["error"]
    assert said[2]["run"] == "c" and "no run named 'c'" in said[2]["error"]
    assert not (a / "previous").exists() and (b / "previous").is_symlink()


def test_eval_with_set_says_what_to_use_instead(project):
    """Click said "No such option: --set  Possible options: --quiet"."""
    make_run(project, "r1")
    err = failure(invoke("eval", "r1", "--set", "eval.prior=train"))
    assert err.code == ExitCode.USAGE
    assert err.message.startswith("orch eval takes no --set (eval.prior=train)")
    assert "--prior uniform|train overrides eval.prior" in err.hint
    assert not (project / "runs" / "r1" / "metrics.json").exists()
