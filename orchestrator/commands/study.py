"""orch study run / status / fetch / report / resume: a whole comparison as one unit."""

from __future__ import annotations

import json
from typing import Dict, List, Optional

import typer

from orchestrator import output
from orchestrator.commands.options import TRUST
from orchestrator.commands.studystatus import Hosts
from orchestrator.config.project import Project
from orchestrator.errors import ExitCode, OrchError, is_interrupt, on_ctrl_c
from remote.jobstate import PENDING, RUNNING, WAITING

study_app = typer.Typer(
    help="A whole comparison (members x seeds) as one unit: run, status, fetch, report, resume.",
    no_args_is_help=True,
)
ONLY = typer.Option([], "--only", metavar="MEMBER", help="Only this member's runs (repeatable).")
STUDY = typer.Argument(..., metavar="STUDY", help="Study name (configs/studies/NAME.yaml) or a path to a YAML file.")


def _say(text: str) -> None:
    output.say(text, markup=False)


def _recorded(project: Project, name: str) -> Dict:
    from orchestrator.config.experiments import is_path
    from orchestrator.runs import study as studies

    if is_path(name):  # a path to the study file: its record is under the study's name
        from orchestrator.config import studies as config

        name = config.load(project, name).name
    return studies.load_record(project, name)


@study_app.command("run")
def run_cmd(
    study: str = STUDY,
    host: Optional[str] = typer.Option(None, "--host", "-H", metavar="HOST", help="Host (default: the study's)."),
    only: List[str] = ONLY,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (runs, jobs, shared pretrains, time) only."),
    trust_new_host_key: bool = TRUST,
    quiet: bool = output.quiet_option(),
):
    """Launch every run of a study (members x seeds) that is not launched yet; returns at once.

    A study file edited since its runs were launched: a change to a launched run is refused
    (exit 8) and named; new members and seeds are launched; new ensembles and `compare:` are recorded."""
    from orchestrator.config import studies as config
    from orchestrator.runs import study as studies

    project = Project.find()
    plan = studies.keep_launched_owners(project, config.load(project, study, host))
    chosen = studies.with_owners(plan, config.only(plan, only), project)
    if dry_run:
        for line in studies.preview(project, plan, chosen):
            print(line)
        return
    studies.check_unchanged(project, plan)  # an edit it refuses is said first, whatever is left to launch
    edits = studies.pending_edits(project, plan)
    todo = studies.not_launched(project, plan, chosen)
    if not todo and not edits:
        raise OrchError(
            f"every run of study {plan.name}" + (f" ({', '.join(only)})" if only else "") + " is launched already",
            ExitCode.RUN_STATE,
            hint=f"`orch study status {plan.name}`; `orch study resume {plan.name}` relaunches what failed",
        )
    for edit in edits:  # none refused: study.json takes them now
        _say(f"{plan.name}: {edit.text}: {studies.recorded_words(edit, plan.name, [r.run_id for r in todo])}")
    if not todo:
        studies.save_record(project, plan)
        _say(f"  nothing to launch: study.json records the study file as it is now (`orch study report {plan.name}`)")
        print(plan.name)
        return
    studies.save_record(project, plan)
    with Hosts(project, trust_new_host_key) as hosts:
        studies.launch_runs(project, hosts(plan.host), plan, todo, _say)  # says what a Ctrl-C in it left
        on_ctrl_c(f"the runs of study {plan.name} are launched and keep running (`orch study status {plan.name}`)")
    _say(f"  follow: orch study status {plan.name}")
    print(plan.name)


@study_app.command("status")
def status_cmd(
    study: str = STUDY,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    trust_new_host_key: bool = TRUST,
    quiet: bool = output.quiet_option(),
):
    """One table: each run of the study (member x seed) with its state, progress and ETA."""
    from orchestrator.commands import studystatus

    project = Project.find()
    studystatus.show(_recorded(project, study), project, as_json, trust_new_host_key)  # and the study file's edits


@study_app.command("fetch")
def fetch_cmd(
    study: str = STUDY,
    trust_new_host_key: bool = TRUST,
    quiet: bool = output.quiet_option(),
):
    """Fetch, verify and evaluate every finished run of the study not fetched yet (run it again for the rest).

    A run whose folder here was deleted is restored from its host first."""
    from orchestrator.results.evaluate import evaluate_run
    from orchestrator.runs import fetch as fetching
    from orchestrator.runs import study as studies
    from orchestrator.runs.restore import restore_missing

    project = Project.find()
    record = _recorded(project, study)
    problems = []
    fetched: List[str] = []
    below: List[str] = []  # runs below their own eval.min_accuracy, fetched now or before
    current, evaluating = None, False
    with Hosts(project, trust_new_host_key) as hosts:
        problems += restore_missing(project, record, hosts, _say)  # a launched run's folder deleted here
        views = studies.status(project, record, hosts)
        try:
            for v in views:
                run_dir = project.run_dir(v.run_id)
                kept = _kept_metrics(run_dir) if v.state == "fetched" else None
                if kept is not None:  # fetched and evaluated before: the same verdict on every fetch
                    if kept.get("meets_min_accuracy") is False:
                        below.append(v.run_id)
                    continue
                if v.state != "fetched" and not studies.ready_to_fetch(v):
                    _say(f"{v.run_id}: {v.state}" + (f" ({v.reason})" if v.reason else "") + ": not fetched")
                    continue
                if not (run_dir / "local.json").is_file():  # launched, its folder gone, not restored (said why)
                    continue
                # A run fetched before without an evaluation here (it failed, or metrics.json was
                # removed or damaged) is evaluated now: a missing verdict must not pass the gate.
                again = v.state == "fetched"
                current, evaluating = v.run_id, again
                try:
                    if not again:
                        host = json.loads((run_dir / "local.json").read_text())["host"]
                        outcome = fetching.fetch(project, hosts(host), v.run_id, partial=False)
                        evaluating = True  # fetched (its record says so): what stops now is the evaluation
                        for line in fetching.fetch_notes(outcome, run_dir):
                            _say(f"{v.run_id}: {line.strip()}")
                    else:
                        _say(f"{v.run_id}: fetched before, but no evaluation of it is here: evaluating it")
                    metrics = evaluate_run(run_dir)
                except OrchError as exc:
                    if is_interrupt(exc):
                        raise
                    problems.append(f"{v.run_id}: {exc.message}")
                    _say(f"{v.run_id}: {exc.message}")
                    current = None
                    continue
                current = None
                v.state = "fetched"
                fetched.append(v.run_id)
                _say(f"{'evaluated' if again else 'fetched and evaluated'} {v.run_id}")
                if not metrics.get("meets_min_accuracy", True):  # as fetch-results: said, then exit 1
                    below.append(v.run_id)
                    _say(
                        f"{v.run_id}: accuracy {metrics['accuracy']:.2%} is below its eval.min_accuracy "
                        f"{metrics['min_accuracy']:.2%}"
                    )
        except (KeyboardInterrupt, OrchError) as exc:
            if not is_interrupt(exc):
                raise
            raise _interrupted_fetch(record["name"], views, fetched, current, evaluating, exc) from None
    done = sum(v.state == "fetched" for v in views)
    _say(f"{done} of {len(views)} runs of {record['name']} fetched")
    if problems:
        raise OrchError(
            f"{len(problems)} runs could not be fetched and evaluated: " + "; ".join(problems[:3]),
            ExitCode.RUN_STATE,
            hint=f"`orch study fetch {record['name']}` tries again; the copies fetched before are kept"
            + (f" ({len(below)} runs fetched are below their eval.min_accuracy)" if below else ""),
        )
    if below:
        raise OrchError(
            f"{len(below)} runs of {record['name']} are below their eval.min_accuracy: " + ", ".join(sorted(below)),
            ExitCode.FAILED,
            hint="they are fetched and evaluated (`orch eval RUN` shows one); "
            f"`orch study report {record['name']}` reports the study",
        )


def _kept_metrics(run_dir) -> Optional[dict]:
    """The evaluation kept in RUN_DIR (metrics.json, written here by orch), or None when there
    is none to read (never written: the evaluation failed; removed; damaged)."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) else None


def _interrupted_fetch(name: str, views, fetched: List[str], current, evaluating: bool, exc) -> OrchError:
    """Ctrl-C in `study fetch`: what was fetched, where it stopped, what is left."""
    from orchestrator.runs.study import listed_runs

    parts = [f"fetched and evaluated {', '.join(fetched)}" if fetched else "no run fetched"]
    hint = f"`orch study fetch {name}` fetches the rest"
    if current is not None and evaluating:
        parts.append(f"{current} is fetched but its evaluation stopped")
        hint += f"; `orch eval {current}` evaluates {current}"
    elif current is not None:
        # fetching.fetch's own message says the previous verified copy is kept
        stopped = exc.message.removeprefix("interrupted: ") if isinstance(exc, OrchError) else ""
        parts.append(stopped or f"the fetch of {current} stopped")
    left = [v.run_id for v in views if v.state != "fetched" and v.run_id != current]
    if left:
        parts.append(f"not fetched: {listed_runs(left)}")
    return OrchError(f"interrupted: study {name}: " + "; ".join(parts), ExitCode.INTERRUPTED, hint=hint)


@study_app.command("report")
def report_cmd(
    study: str = STUDY,
    quiet: bool = output.quiet_option(),
):
    """Write runs/studies/STUDY/report.md, summary.tex, table.csv, table.json and plots/ from what is
    fetched (no SSH)."""
    from orchestrator.results.study_terminal import summary_lines
    from orchestrator.runs import study as studies

    project = Project.find()
    record = _recorded(project, study)
    out_dir = project.study_dir(record["name"])
    record = studies.with_file_report_keys(project, record, _say)  # says how the study file differs
    table = studies.report(project, record, out_dir)
    for line in summary_lines(table):
        _say(line)
    missing = table.get("missing") or []
    if missing:
        _say(f"{len(missing)} run{'' if len(missing) == 1 else 's'} missing from the report (report.md lists them)")
    print(out_dir / "report.md")


@study_app.command("resume")
def resume_cmd(
    study: str = STUDY,
    trust_new_host_key: bool = TRUST,
    quiet: bool = output.quiet_option(),
):
    """Launch the study's runs never launched and relaunch the failed, lost or cancelled jobs of the others
    (also while other jobs of their runs still run, as `orch run EXP --resume RUN` does)."""
    from orchestrator.config import studies as config
    from orchestrator.runs import study as studies
    from orchestrator.runs.restore import restore_missing

    project = Project.find()
    record = _recorded(project, study)
    with Hosts(project, trust_new_host_key) as hosts:
        restore_missing(project, record, hosts, _say)  # a launched run's folder deleted here: from its host
        views = studies.status(project, record, hosts)
        todo = [v for v in views if v.state == "not launched" or studies.resumable(v)]
        if not todo:
            busy = sum(v.state in (RUNNING, PENDING, WAITING) for v in views)
            raise OrchError(
                f"nothing to resume in study {record['name']}: every run is launched and no job of them "
                "failed, was lost or was cancelled" + (f" ({busy} still running or queued)" if busy else ""),
                ExitCode.RUN_STATE,
                hint=f"`orch study status {record['name']}`",
            )
        plan = (
            studies.keep_launched_owners(project, config.load(project, record["file"], record["host"]), record)
            if any(studies.needs_launch(project, v) for v in todo)
            else None
        )
        studies.resume_runs(project, hosts, record, plan, todo, _say)  # says what a Ctrl-C in it left
        on_ctrl_c(f"study {record['name']} is resumed (`orch study status {record['name']}`)")
    print(record["name"])


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
