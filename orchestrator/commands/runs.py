"""run / status / logs / cancel / fetch-results / runs."""

from __future__ import annotations

import json
import sys
import time
from typing import List, Optional

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from orchestrator import backends, output, terminal
from orchestrator.commands import quickstatus
from orchestrator.commands.options import TRUST
from orchestrator.commands.statustable import render
from orchestrator.commands.tables import add_column, add_name_column
from orchestrator.config.project import Project, check_name, launched_at
from orchestrator.contract import records
from orchestrator.errors import ExitCode, OrchError, on_ctrl_c
from orchestrator.runs import hostops
from orchestrator.runs.state import (
    StatusRow,
    never_starting,
    rows_from_remote,
    run_state,
)
from orchestrator.transport.connect import open_transport
from remote.jobstate import ACTIVE, CANCELLED, DONE, FAILED, LOST, PENDING, RUNNING, WAITING

JSON = typer.Option(False, "--json", help="Print JSON for scripts.")


def _active(transport, run_dir, record, doc, selected, backend) -> bool:
    """Whether any of the SELECTED jobs has not ended yet (one status round trip)."""
    run_id = run_dir.name
    remote = hostops.remote_status(transport, record["workdir"], record["code_hash"], run_id, backend)
    if not remote.get("exists"):
        raise hostops.not_on_host(run_dir, record, hostops.run_dir(record["workdir"], run_id))
    rows = {r.name: r for r in rows_from_remote(remote, doc["jobs"], backend)}
    return any(rows[n].state in ACTIVE for n in selected)


def _show_tail(transport, run_dir, record, job, selected, lines, backend) -> bool:
    """`orch logs` without -f: the last LINES lines of each selected job's log.txt - or, for a
    job without one, of its scheduler's own output, said on stderr (`hostctl follow
    --no-follow`).  False: the run's snapshot has a host helper from before --no-follow."""
    run_id = run_dir.name
    command = hostops.follow_command(
        transport, record["workdir"], record["code_hash"], run_id, selected, lines, backend, follow=False
    )
    res = transport.run(command, check=False)
    if res.rc == 2 and "unrecognized arguments: --no-follow" in res.stderr:
        return False
    if res.rc == hostops.NO_SNAPSHOT_RC and hostops.NO_SNAPSHOT_MARK in res.stderr:
        raise hostops.helper_failed(record["host"], res.rc, res.stderr)
    if res.rc == hostops.TAIL_NO_RUN_RC and not res.stdout:
        raise hostops.not_on_host(run_dir, record, hostops.run_dir(record["workdir"], run_id))
    for said in (res.stderr or "").splitlines():
        mark, _, rest = said.partition(" ")
        name, _, rest = rest.partition(" ")
        file, _, words = rest.partition(" ")
        if mark == hostops.TAIL_OUTPUT_MARK and name in selected:
            output.say(
                f"{escape(name)} has no log.txt (orch's wrapper never ran): "
                f"this is {escape(terminal.visible(words[:200]))} ({escape(terminal.visible(file[:200]))})"
            )
    print(terminal.log_text(res.stdout), end="")
    if res.overflow:  # the host printed more than a command's output may be: its end is missing
        sys.stdout.flush()
        from orchestrator.transport.base import MAX_OUTPUT

        what = f"the last {lines} lines of {job or 'the logs of ' + run_id}"
        output.warn(
            f"{what} are more than {MAX_OUTPUT >> 20} MB, so orch stopped reading them there: "
            f"the output above is cut and their end is missing; a smaller -n shows the end "
            f"(`orch logs {run_id} {job or ''} -n 100`), and `orch fetch-results {run_id} --full-logs` "
            "copies whole logs".replace("  ", " ")
        )
    if not res.stdout and res.rc != 0:
        raise OrchError(
            f"no log yet for {job or run_id}{_why_no_log(transport, record, run_id, selected, backend)}",
            ExitCode.RUN_STATE,
        )
    return True


def _ends_by_follow(transport, command: str, out, run_id: str) -> int:
    """`orch logs` without -f on ended jobs of a run whose host helper is older than
    --no-follow: its `follow` COMMAND prints their ends and stops.  A one-shot command, run
    as every quick one (transport.run: left once the host is silent for its io_timeout, and
    after QUICK_LIMIT_S whatever it sends): streamed with no limit, a host that never ended
    it held `orch logs` for ever.  Its output goes to OUT; returns its exit code."""
    try:
        res = transport.run(command, check=False)
    except OrchError as exc:
        if exc.code != ExitCode.REMOTE:  # the connection lost, an interrupt: as they are
            raise
        raise OrchError(
            f"the end of the logs of {run_id} did not come from {transport.host.name}, whose host helper "
            f"in this run's code snapshot is older than `orch logs` without -f: {exc.message}",
            ExitCode.REMOTE,
            hint=exc.hint,
        ) from None
    out.write(res.stdout + res.stderr)  # `follow` sends both as one stream
    if res.overflow:
        from orchestrator.transport.base import MAX_OUTPUT

        raise OrchError(
            f"the end of the logs of {run_id} is more than {MAX_OUTPUT >> 20} MB, so orch stopped reading it there",
            ExitCode.REMOTE,
            hint=f"`orch fetch-results {run_id} --full-logs` copies whole logs",
        )
    return res.rc


def _why_no_log(transport, record, run_id: str, selected, backend) -> str:
    """Where the jobs without a log are (one more status round trip, on this error path only):
    queued, with the scheduler's reason and id, or waiting for a job they require; or why
    they ended before they wrote one (sbatch refused them: the recorded reason)."""
    try:
        remote = hostops.remote_status(transport, record["workdir"], record["code_hash"], run_id, backend)
    except OrchError:
        return ""
    rows = rows_from_remote(remote, [{"name": n} for n in selected], backend)
    said = [
        f"{r.name} is {'queued' if r.state == PENDING else r.state}"
        + "".join(f", {terminal.visible(x)[:200]}" for x in (r.reason, r.note) if x)
        + (f" (scheduler id {terminal.visible(str(r.backend['job_id']))[:40]})" if r.backend.get("job_id") else "")
        for r in rows
        if r.state in (PENDING, WAITING)
    ] + [
        f"{r.name} {r.state} before it wrote one" + (f": {terminal.visible(r.reason)[:500]}" if r.reason else "")
        for r in rows
        if r.state in (FAILED, CANCELLED, LOST)
    ]
    return ": " + "; ".join(said) if said else ""


def follow_hint(run_id: str) -> str:
    # Two alternatives, not a pipeline: "a | b" reads as shell syntax someone might paste.
    return f"  follow: orch status {run_id} --watch, or orch logs {run_id} JOB -f"


def status_table(run_id: str, host: str, rows: List[StatusRow], backend) -> Text:
    """The status table (commands/statustable.py) for a Rich view (`status --watch`): the
    same lines plain `orch status` prints, its state colours as Rich styles."""
    return Text.from_ansi(render(run_id, host, rows, backend, colour=True).rstrip("\n"))


RECONNECT_WAITS_S = (2, 5, 10, 20, 30)  # about a minute of retries: a laptop changing networks


class Backoff:
    """Seconds to the next poll: ``base`` after a change, then 1.5x longer each time
    nothing changed, up to ``cap``.  `run --wait` on an hour-long run polled every second
    and spent ~400 s of CPU (one host-helper call each) watching numbers that move every
    minute or two."""

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap, self.now = base, max(cap, base), base
        self.last: object = None

    def after(self, seen: object) -> float:
        self.now = self.base if seen != self.last else min(self.now * 1.5, self.cap)
        self.last = seen
        return self.now


def _watch(
    transport, record, doc, run_id: str, interval: float, view: Console, max_interval: Optional[float] = None
) -> List[StatusRow]:
    """Refresh the status table in place on ``view`` until no job is pending, waiting or running.

    Polls every ``interval`` seconds, or, with ``max_interval``, back off towards it while
    nothing changes (:class:`Backoff`).

    A dropped connection is retried (the jobs do not need us); Ctrl-C only stops watching.
    Without a terminal (a pipe, a CI log), one line per change instead of a live table.
    ``view`` is stdout for `status --watch` (the table is what it produces) and stderr for
    `run --wait` (there it is progress; the run id is the data).
    """
    host = record["host"]
    again = f"`orch status {run_id} --watch` picks up again; `orch cancel {run_id}` stops the jobs"

    def poll() -> List[StatusRow]:
        attempt = 0
        while True:
            try:
                backend = backends.for_record(record)
                remote = hostops.remote_status(transport, record["workdir"], record["code_hash"], run_id, backend)
                return rows_from_remote(remote, doc["jobs"], backend)
            except OrchError as exc:
                if exc.code != ExitCode.UNREACHABLE or attempt == len(RECONNECT_WAITS_S):
                    raise OrchError(exc.message, exc.code, hint=f"the jobs keep running on {host}; {again}") from None
                wait_s = RECONNECT_WAITS_S[attempt]
                attempt += 1
                output.say(
                    f"[yellow]connection to {escape(host)} lost[/] ({escape(exc.message)}); "
                    f"retrying in {wait_s} s ({attempt}/{len(RECONNECT_WAITS_S)})"
                )
                transport.close()  # the next command opens a fresh connection
                time.sleep(wait_s)

    def summary(rows: List[StatusRow]) -> str:
        return f"{run_id}: " + ", ".join(
            f"{r.name} {r.state}" + (f" {r.step}/{r.total}" if r.total else "") for r in rows
        )

    pace = Backoff(interval, max_interval or interval)

    def wait(rows: List[StatusRow]) -> None:
        time.sleep(pace.after([(r.state, r.phase, r.step) for r in rows]))

    def going(rows: List[StatusRow]) -> bool:
        # Not ended, and no job the scheduler will never start (it would wait for good).
        return run_state(rows) == RUNNING and not never_starting(rows, backends.for_record(record))

    try:
        rows = poll()
        if not view.is_terminal:
            last, last_t = None, 0.0
            while True:
                key = [(r.state, r.phase) for r in rows]
                if key != last or time.time() - last_t >= 30:  # on a change, else every 30 s
                    view.print(summary(rows), markup=False)
                    view.file.flush()
                    last, last_t = key, time.time()
                if not going(rows):
                    return rows
                wait(rows)
                rows = poll()
        with Live(
            status_table(run_id, host, rows, backends.for_record(record)), console=view, refresh_per_second=4
        ) as live:
            while going(rows):
                wait(rows)
                rows = poll()
                live.update(status_table(run_id, host, rows, backends.for_record(record)))
        view.print()
        return rows
    except KeyboardInterrupt:
        raise OrchError(
            f"stopped watching {run_id}; its jobs keep running on {host}", ExitCode.INTERRUPTED, hint=again
        ) from None


_remember = quickstatus.remember


def _wait_fetch(project: Project, transport, run_id: str, experiment: str) -> None:
    """--wait: live status until the jobs end (Ctrl-C only stops watching), then fetch."""
    run_dir = project.run_dir(run_id)
    record, doc = records.load_record(run_dir), records.load_resolved(run_dir)
    view = output.err if not output.quiet() else _nowhere()
    rows = _watch(transport, record, doc, run_id, 1.0, view, max_interval=5.0)
    _remember(run_dir, record, rows)
    _never_starts(run_id, record, rows, experiment)
    if run_state(rows) != DONE:
        why = "; ".join(f"{r.name} {r.state}" + (f" ({r.reason})" if r.reason else "") for r in rows if r.state != DONE)
        failed = [r for r in rows if r.state != DONE]
        # exit code 2 is a job's config or data error (remote/run_job.py): a resume relaunches
        # the same config, so it would fail the same way
        user_error = all(r.reason.startswith("exit code 2") for r in failed)
        raise OrchError(
            f"run {run_id} ended {run_state(rows)}: {why}",
            ExitCode.RUN_STATE,
            hint=f"`orch logs {run_id} JOB` shows why; "
            + (
                "the run's config or data is wrong: fix it and start a new run (a resume would fail the same way)"
                if user_error
                else f"`orch run {experiment} --resume {run_id}` retries"
            ),
        )
    from orchestrator.runs import fetch as fetching

    outcome = fetching.fetch(project, transport, run_id, partial=False)
    for line in fetching.fetch_notes(outcome, run_dir):  # a resumed run's results replaced
        output.say(line, markup=False)


def _never_starts(run_id: str, record, rows: List[StatusRow], experiment: str) -> None:
    """The error that ends a watch of a run with a job its scheduler will never start."""
    never = never_starting(rows, backends.for_record(record))
    if never:
        raise OrchError(
            f"run {run_id} cannot end: {'; '.join(never)}",
            ExitCode.RUN_STATE,
            hint=f"`orch cancel {run_id}` takes its jobs out of the queue; fix the host config "
            f"(`orch hosts check {record['host']}` says what is wrong), then `orch run {experiment} --resume {run_id}`",
        )


def _nowhere() -> Console:
    """A console that shows nothing (--quiet): the watch still runs, silently."""
    import io

    return Console(file=io.StringIO(), highlight=False)


def _launched_note(run_id: str, host: str, jobs: Optional[List[str]] = None) -> str:
    """What a Ctrl-C leaves once RUN (or these JOBS of it) is launched: it keeps running."""
    what = (
        f"{', '.join(jobs)} of {run_id} are relaunched on {host} and keep"
        if jobs
        else f"run {run_id} is launched on {host} and its jobs keep"
    )
    return f"{what} running (`orch status {run_id}`; `orch cancel {run_id}` stops them)"


def _evaluate(project: Project, run_id: str) -> dict:
    on_ctrl_c(f"run {run_id} is fetched; its evaluation stopped (`orch eval {run_id}` evaluates it)")
    metrics = _evaluate_dir(project.run_dir(run_id))
    output.say(f"results in {escape(str(project.run_dir(run_id)))} (metrics.json, predictions.csv, report.md)")
    return metrics


def check_min_accuracy(metrics: dict) -> None:
    # Imported here, after an evaluation has loaded numpy anyway: a launch without --wait
    # must not pay for results.evaluate's imports (~0.3 s CPU).
    from orchestrator.results.evaluate import check_min_accuracy as check

    check(metrics)


def _evaluate_dir(run_dir) -> dict:
    from orchestrator.commands.quickfetch import evaluate_dir

    return evaluate_dir(run_dir, as_result=False)


def _run_result(
    run_id: str, host: str, jobs, code_hash: str, files_sent=None, seconds=None, metrics=None, relaunched=None
) -> dict:
    """`orch run --json`: what a script needs to follow the run."""
    doc = {
        "run": run_id,
        "host": host,
        "jobs": [j["name"] if isinstance(j, dict) else j for j in jobs],
        "code_hash": code_hash,
    }
    if files_sent is not None:
        doc["files_sent"] = files_sent
    if seconds is not None:
        doc["seconds"] = round(seconds, 2)
    if relaunched is not None:
        doc["relaunched"] = relaunched
    if metrics is not None:
        doc.update({"accuracy": metrics.get("accuracy"), "verdict": (metrics.get("verdict") or {}).get("label")})
    return doc


def _print_result(run_id: str, as_json: bool, result: dict) -> None:
    """stdout: the run id alone (`R=$(orch run smoke)`), or the JSON document."""
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        print(run_id, flush=True)


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        experiment: str = typer.Argument(
            ..., metavar="EXPERIMENT", help="Experiment name (configs/experiments/NAME.yaml) or a path to a YAML file."
        ),
        host: Optional[str] = typer.Option(
            None, "--host", "-H", metavar="HOST", help="Host to run on (default: the experiment's `host`)."
        ),
        name: Optional[str] = typer.Option(
            None, "--name", metavar="RUN", help="Run id (default: EXPERIMENT-YYYYmmdd-HHMMSS)."
        ),
        set_: List[str] = typer.Option(
            [], "--set", metavar="KEY=VALUE", help="Override an experiment key: --set train.steps=200 (repeatable)."
        ),
        resume: Optional[str] = typer.Option(
            None, "--resume", metavar="RUN", help="Relaunch the failed/lost/cancelled jobs of this run."
        ),
        wait: bool = typer.Option(
            False, "--wait", help="Stay: show live status until the jobs end, then fetch and evaluate."
        ),
        dry_run: bool = typer.Option(
            False,
            "--dry-run",
            help="List the files that would be sent and the jobs that would start, without contacting the host.",
        ),
        as_json: bool = typer.Option(
            False, "--json", help="Print the run as JSON (run, host, jobs, ...) instead of its id."
        ),
        trust_new_host_key: bool = TRUST,
        quiet: bool = output.quiet_option(),
    ):
        """Sync code, stage data and launch the run's jobs (tmux, or Slurm on a cluster); returns at once.

        Jobs: one per class (a classifier run has one), a `pretrain` job first when pretrain.enabled,
        a `score` job last when score.mdlm_draws=adaptive.

        Prints the run id on stdout (`R=$(orch run smoke)`); what it does goes to stderr.
        """
        from orchestrator.config import experiments
        from orchestrator.runs import launch as runner

        project = Project.find()
        if dry_run and (resume or wait):
            raise OrchError(
                "--dry-run previews a new launch: it cannot be combined with " + ("--resume" if resume else "--wait"),
                ExitCode.USAGE,
            )
        if resume:
            # A run keeps its resolved config and pinned code: nothing may change it now.  (A
            # Slurm host's `slurm:` options are the host's, read at each launch and resume.)
            run_dir = project.existing_run(resume)
            record = records.load_record(run_dir)
            same_host = host is not None and host == record.get("host")
            given = [
                flag for flag, value in (("--set", set_), ("--name", name), ("--host", host and not same_host)) if value
            ]
            if given:
                raise OrchError(
                    f"--resume relaunches run {resume} with the config, code and host it was launched with"
                    + (f" ({record.get('host')})" if "--host" in given else "")
                    + f"; {', '.join(given)} cannot change it",
                    ExitCode.USAGE,
                    hint="start a new run to change its config, host or name",
                )
            if not experiments.names_experiment(experiment, record.get("experiment"), resume):
                raise OrchError(
                    f"run {resume} is of experiment {record.get('experiment')!r}, not {experiment!r}",
                    ExitCode.USAGE,
                    hint=f"orch run {record.get('experiment')} --resume {resume}",
                )
            with open_transport(project, record["host"], trust_new_host_key) as transport:
                on_ctrl_c(
                    f"the relaunch of {resume} stopped: some of its jobs may have started again "
                    f"(`orch status {resume}` shows which)"
                )
                todo = runner.resume(project, transport, resume)
                on_ctrl_c(_launched_note(resume, record["host"], todo))
                output.say(f"relaunched {', '.join(todo)} of {resume} on {escape(record['host'])}")
                result = _run_result(resume, record["host"], todo, record["code_hash"], relaunched=todo)
                if not wait:
                    output.say(follow_hint(resume), markup=False)
                    _print_result(resume, as_json, result)
                    return
                if not as_json:
                    _print_result(resume, False, result)
                _wait_fetch(project, transport, resume, record.get("experiment") or experiment)
            metrics = _evaluate(project, resume)
            if as_json:
                _print_result(
                    resume,
                    True,
                    _run_result(resume, record["host"], todo, record["code_hash"], relaunched=todo, metrics=metrics),
                )
            check_min_accuracy(metrics)
            return
        exp, _ = experiments.load(project, experiment, set_)
        run_id = check_name("run", name) if name else records.new_run_id(project, exp)
        host_name = host or exp.host
        if dry_run:
            from orchestrator.config.hosts import resolve_host
            from orchestrator.runs.preview import preview, render

            if project.run_dir(run_id).exists():  # the launch would refuse it: say so now
                raise runner.name_taken(project, exp, run_id)

            plan = preview(project, exp, run_id, resolve_host(project, host_name))
            print(json.dumps(plan, indent=2) if as_json else "\n".join(render(plan)))
            return
        start = time.time()
        with open_transport(project, host_name, trust_new_host_key) as transport:
            try:
                launched = runner.launch(project, transport, exp, run_id)  # its own Ctrl-C message
            except OrchError as exc:
                if exc.run_created:
                    # The run exists (some jobs may not have started): a script gets its id
                    # to inspect or --resume it, and the exit code says it did not all start.
                    _print_result(run_id, as_json, {"run": run_id, "host": host_name, "started": False})
                raise
            on_ctrl_c(_launched_note(run_id, host_name))
            jobs = ", ".join(f"{j['name']}" + (f"@gpu{j['gpu']}" if j["gpu"] else "") for j in launched.jobs)
            seconds = time.time() - start
            output.say(
                f"launched [bold]{escape(run_id)}[/] on {escape(host_name)}: {escape(jobs)} "
                f"(code {launched.code_hash}, {launched.files_sent} files sent, {seconds:.1f} s)"
            )
            result = _run_result(run_id, host_name, launched.jobs, launched.code_hash, launched.files_sent, seconds)
            if not wait:
                output.say(follow_hint(run_id), markup=False)
                _print_result(run_id, as_json, result)
                return
            if not as_json:
                _print_result(run_id, False, result)  # now: a script can follow the run even if the wait fails
            _wait_fetch(project, transport, run_id, exp.name)
        metrics = _evaluate(project, run_id)
        if as_json:
            _print_result(
                run_id,
                True,
                _run_result(
                    run_id, host_name, launched.jobs, launched.code_hash, launched.files_sent, seconds, metrics=metrics
                ),
            )
        check_min_accuracy(metrics)

    @app.command()
    def status(
        run_id: Optional[str] = typer.Argument(None, metavar="RUN", help="Run id (default: the newest run)."),
        watch: bool = typer.Option(
            False,
            "--watch",
            "-w",
            help="Refresh in place until every job has ended; exit 8 if the run ended failed, lost or cancelled, "
            "or has a job its scheduler will never start.",
        ),
        interval: float = typer.Option(
            2.0, "--interval", min=0.5, metavar="SECONDS", help="Seconds between refreshes with --watch (0.5 or more)."
        ),
        as_json: bool = JSON,
        trust_new_host_key: bool = TRUST,
        quiet: bool = output.quiet_option(),
    ):
        """One table of a run's jobs, read from the host in one SSH round trip."""
        if as_json or not watch:
            # What orch/cli.py runs without Typer for the plain forms (commands/quickstatus.py).
            quickstatus.show(run_id, as_json, trust_new_host_key)
            return
        project = Project.find()
        run_dir = project.existing_run(run_id)
        run_id = run_dir.name
        record = records.load_record(run_dir)
        doc = {"jobs": records.planned_jobs(run_dir, record)}
        with open_transport(project, record["host"], trust_new_host_key) as transport:
            quickstatus.host_rows(transport, run_dir, record, doc["jobs"])  # the run is there at all
            rows = _watch(transport, record, doc, run_id, interval, output.out)
            _remember(run_dir, record, rows)
        _never_starts(run_id, record, rows, record.get("experiment") or "EXPERIMENT")
        if run_state(rows) in (FAILED, CANCELLED):
            raise typer.Exit(int(ExitCode.RUN_STATE))  # scripts can wait on `status --watch`

    @app.command()
    def logs(
        run_id: Optional[str] = typer.Argument(None, metavar="RUN", help="Run id (default: the newest run)."),
        job: Optional[str] = typer.Argument(None, metavar="JOB", help="Job name (default: every job)."),
        follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines (Ctrl-C to stop)."),
        lines: int = typer.Option(
            40,
            "--lines",
            "-n",
            min=0,
            metavar="N",
            help="Lines to show from the end (0 or more; with -f, 0 shows only new lines).",
        ),
        trust_new_host_key: bool = TRUST,
        quiet: bool = output.quiet_option(),
    ):
        """Tail (or follow) a job's log on its host (over SSH; on this machine for host `local`)."""
        project = Project.find()
        run_dir = project.existing_run(run_id)
        run_id = run_dir.name  # the newest run's, when none was named
        record, doc = records.load_record(run_dir), records.load_resolved(run_dir)
        names = [j["name"] for j in doc["jobs"]]
        if job is not None and job not in names:
            raise OrchError(f"run {run_id} has no job {job!r}", ExitCode.USAGE, hint="jobs: " + ", ".join(names))
        selected = [job] if job else names
        backend = backends.for_record(record)
        with open_transport(project, record["host"], trust_new_host_key) as transport:
            # Following jobs that have all ended would print their end and return at once:
            # say so with the plain tail instead.
            follow = follow and _active(transport, run_dir, record, doc, selected, backend)
            if not follow and _show_tail(transport, run_dir, record, job, selected, lines, backend):
                return
            # The run's own snapshot has a host helper older than `follow --no-follow`: its
            # `follow` shows ended jobs' ends and stops, which is the tail for them.
            if not follow and _active(transport, run_dir, record, doc, selected, backend):
                raise OrchError(
                    f"the host helper in {run_id}'s code snapshot on {record['host']} is older than "
                    "`orch logs` without -f, and can only follow a running job's log",
                    ExitCode.RUN_STATE,
                    hint=f"`orch logs {run_id} {job or ''} -f`".replace("  ", " "),
                )
            # The host helper prints the logs as they grow and ends when the jobs end,
            # whatever backend runs them (a Slurm job's wrapper is on another node).
            command = hostops.follow_command(
                transport, record["workdir"], record["code_hash"], run_id, selected, lines, backend
            )
            shown = terminal.LogStream(sys.stdout)  # the host's log text, without its controls
            try:
                rc = (
                    transport.stream(command, out=shown)
                    if follow
                    else _ends_by_follow(transport, command, shown, run_id)
                )
            except KeyboardInterrupt:
                # Ctrl-C is how one stops following: said as such, with the code every Ctrl-C gets
                raise OrchError(
                    f"stopped following {run_id}; its jobs keep running on {record['host']}",
                    ExitCode.INTERRUPTED,
                    hint=f"`orch logs {run_id} {job or ''} -f` follows again".replace("  ", " "),
                ) from None
            except OrchError as exc:
                if not follow:
                    raise
                raise OrchError(
                    exc.message,
                    exc.code,
                    hint=f"the job keeps running; `orch logs {run_id} {job or ''} -f` follows again".replace("  ", " "),
                ) from None
            finally:
                shown.close()
            if rc == hostops.NO_SNAPSHOT_RC:  # the host helper's snapshot is gone: as status says it
                where = hostops.code_dir(record["workdir"], record["code_hash"])
                raise hostops.helper_failed(record["host"], rc, f"{hostops.NO_SNAPSHOT_MARK} {where}")
            if rc != 0:
                raise OrchError(
                    f"following the logs of {run_id} failed on {record['host']} (exit {rc})",
                    ExitCode.REMOTE,
                    hint=f"`orch logs {run_id} {job or ''}` shows their end".replace("  ", " ")
                    + " (runs launched by an orch older than `logs -f` on its "
                    "host helper cannot be followed)",
                )

    @app.command()
    def cancel(
        run_id: str = typer.Argument(..., metavar="RUN"),
        job: Optional[List[str]] = typer.Argument(None, metavar="JOB...", help="Jobs to cancel (default: all)."),
        trust_new_host_key: bool = TRUST,
        quiet: bool = output.quiet_option(),
    ):
        """Stop a run's jobs (or some of them) and mark them cancelled."""
        project = Project.find()
        run_dir = project.existing_run(run_id)
        record, doc = records.load_record(run_dir), records.load_resolved(run_dir)
        names = [j["name"] for j in doc["jobs"]]
        for name in job or []:
            if name not in names:
                raise OrchError(f"run {run_id} has no job {name!r}", ExitCode.USAGE, hint="jobs: " + ", ".join(names))
        with open_transport(project, record["host"], trust_new_host_key) as transport:
            result = hostops.remote_cancel(
                transport, record["workdir"], record["code_hash"], run_id, list(job or []), backends.for_record(record)
            )
        if not result["jobs"] and not job:  # every job of a run that is there has a folder
            raise hostops.not_on_host(run_dir, record, hostops.run_dir(record["workdir"], run_id))
        stuck = [item for item in result["jobs"] if item.get("error")]
        hostops.note_cancel(run_dir, record, result)  # `orch runs` (no SSH) shows the last states seen
        for item in result["jobs"]:  # what happened to each job: the command's result, on stdout
            verb = (
                item["error"] if item.get("error") else "cancelled" if item["changed"] else f"already {item['state']}"
            )
            output.out.print(f"{item['name']}: {verb}", markup=False)
        if stuck:
            raise OrchError(
                f"{', '.join(i['name'] for i in stuck)} did not stop yet",
                ExitCode.RUN_STATE,
                hint=f"`orch status {run_id}` shows when they end; `orch cancel {run_id}` again to retry",
            )

    @app.command("fetch-results")
    def fetch_results(
        run_id: Optional[str] = typer.Argument(None, metavar="RUN", help="Run id (default: the newest run)."),
        partial: bool = typer.Option(False, "--partial", help="Fetch what exists even if some jobs have not finished."),
        no_eval: bool = typer.Option(False, "--no-eval", help="Do not evaluate after fetching."),
        full_logs: bool = typer.Option(
            False, "--full-logs", help="Fetch whole logs, up to 1 GiB each (default: the last 1 MB of each)."
        ),
        trust_new_host_key: bool = TRUST,
        quiet: bool = output.quiet_option(),
    ):
        """Pull results into runs/<run-id>/, verify them, then evaluate locally.

        Exits 1 when the run sets eval.min_accuracy and the accuracy falls below it."""
        # One implementation with the quick path that cli.py takes for plain command lines.
        from orchestrator.commands.quickfetch import fetch_results as fetch

        fetch(run_id, partial, no_eval, full_logs, trust_new_host_key)

    @app.command("runs")
    def runs_list(
        drop_previous: List[str] = typer.Option(
            [],
            "--drop-previous",
            metavar="RUN",
            help="Remove the earlier copies of RUN's results that fetches kept in runs/RUN/previous/ instead of "
            "listing (repeatable; refused while a fetch of RUN is at work).",
        ),
        as_json: bool = JSON,
        quiet: bool = output.quiet_option(),
    ):
        """List local runs and their last known states (no SSH)."""
        project = Project.find()
        from orchestrator.commands.runlist import drop_previous as drop
        from orchestrator.commands.runlist import listed

        if drop_previous:
            drop(project, drop_previous, as_json)
            return
        items = [listed(run_dir) for run_dir in sorted(project.run_folders(), key=lambda p: (launched_at(p), p.name))]
        if as_json:
            print(json.dumps(items))
            return
        table = Table(title="runs", title_justify="left")
        add_name_column(table, "run", [it["run"] for it in items])
        for col in ("experiment", "kind", "host", "launched", "state", "accuracy"):
            add_column(table, col)
        for it in items:
            # a percentage, as report.pct prints one (not imported: it would load numpy for a listing);
            # --json keeps the fraction
            acc = it["accuracy"]
            acc = f"{100.0 * acc:.2f}%" if isinstance(acc, (int, float)) and not isinstance(acc, bool) else "-"
            table.add_row(
                escape(it["run"]),
                escape(str(it["experiment"]) + (f" (study {it['study']})" if it.get("study") else "")),
                escape(it["kind"]),
                escape(str(it["host"])),
                it["launched"],
                escape(str(it["state"])),
                acc,
            )
        output.out.print(table)
        for it in items:  # what is wrong with each unreadable folder, and how to mend it; what else to know
            for line in [it["error"]] if it.get("error") else it.get("notes", []):
                output.out.print(f"{it['run']}: {line}", markup=False, highlight=False, soft_wrap=True)
