"""`orch fetch-results`: pull, verify, evaluate; its plain command lines without Typer
(issue 15: a fetch costs what rsync and the evaluation of its texts cost, plus little).

orchestrator/cli.py hands a command line here first.  Only the plain forms are taken:
`[-q] fetch-results [RUN] [--no-eval] [--partial] [--full-logs] [--trust-new-host-key] [-q]`.
Anything else (`--help`, an unknown option, a second argument) returns None and goes the
Typer way, so help texts and usage errors (one message, exit 2) stay exactly Typer's.
Typer's parsing is what is spared: it builds a pydantic adapter per parameter (~0.2 s of
CPU on a small machine) and loads every command of the module.  The Typer command
(commands/runs.py) calls :func:`fetch_results` too: one implementation of the command.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from orchestrator.commands.quickpath import plain, run
from orchestrator.errors import ExitCode, OrchError

FLAGS = {"--no-eval": "no_eval", "--partial": "partial", "--full-logs": "full_logs", "--trust-new-host-key": "trust"}


def parse(argv: List[str]) -> Optional[Dict[str, Any]]:
    """{"run_id", "no_eval", "partial", "full_logs", "trust", "quiet"} for a plain
    `fetch-results` command line; None for anything else (Typer parses it)."""
    found = plain(argv, ["fetch-results"], flags=FLAGS)
    if found is None:
        return None
    run_id, given, quiet = found
    parsed: Dict[str, Any] = {"run_id": run_id, **{v: False for v in FLAGS.values()}}
    parsed.update({FLAGS[option]: True for option, _ in given})
    parsed["quiet"] = quiet
    return parsed


def evaluate_dir(run_dir, as_result: bool) -> dict:
    """Evaluate a fetched run (no plots: they are `orch eval RUN --plots`) and show its
    summary: AS_RESULT on stdout, as `orch eval` does (fetch-results' result), else on
    stderr unless --quiet (`run --wait`, whose stdout is the run id)."""
    from orchestrator import output
    from orchestrator.commands.results_view import print_summary
    from orchestrator.results.evaluate import evaluate_run

    metrics = evaluate_run(run_dir)
    if as_result or not output.quiet():
        print_summary(output.out if as_result else output.err, metrics, run_dir)
    return metrics


def fetch_results(run_id: Optional[str], partial: bool, no_eval: bool, full_logs: bool, trust: bool) -> None:
    """Pull results into runs/<run-id>/, verify them, then evaluate locally."""
    progress: Dict[str, str] = {}  # what is done so far: "run" (its name), "fetched"
    try:
        _fetch_results(run_id, partial, no_eval, full_logs, trust, progress)
    except KeyboardInterrupt:
        # The fetch and the evaluation say their own Ctrl-C; this one lands before, between or after them.
        name = progress.get("run") or run_id
        if "fetched" in progress:
            raise OrchError(
                f"interrupted: {name} is fetched and its results verified; the rest stopped",
                ExitCode.INTERRUPTED,
                hint=f"`orch eval {name}` evaluates them",
            ) from None
        raise OrchError(
            f"interrupted before anything was fetched{f' of {name}' if name else ''}: its folder here is as it was",
            ExitCode.INTERRUPTED,
            hint=f"`orch fetch-results{f' {name}' if name else ''}` fetches it",
        ) from None


def _fetch_results(
    run_id: Optional[str], partial: bool, no_eval: bool, full_logs: bool, trust: bool, progress: Dict[str, str]
) -> None:
    from orchestrator import output
    from orchestrator.config.project import Project
    from orchestrator.contract import records
    from orchestrator.runs import fetch as fetching
    from orchestrator.runs.fetch import FULL_LOG_BYTES, TAIL_BYTES
    from orchestrator.transport.connect import open_transport
    from remote.jobstate import DONE

    project = Project.find()
    if run_id is not None:  # a study's run whose folder here was deleted comes back from its host first
        from orchestrator.runs.restore import restore_for_fetch

        restore_for_fetch(project, run_id, trust, lambda line: output.say(line, markup=False))
    run_dir = project.existing_run(run_id)
    progress["run"] = run_dir.name
    record = records.load_record(run_dir)
    records.load_resolved(run_dir)  # a damaged run.yaml is said before connecting, as status says it
    with open_transport(project, record["host"], trust) as transport:
        outcome = fetching.fetch(project, transport, run_dir.name, partial, full_logs=full_logs)
        progress["fetched"] = "yes"
    done = sum(r.state == DONE for r in outcome["rows"])
    output.say(
        f"fetched {run_dir.name}: {done}/{len(outcome['rows'])} jobs done, results verified -> {run_dir}",
        markup=False,
    )
    for line in fetching.fetch_notes(outcome, run_dir):
        output.say(line, markup=False)
    if outcome.get("moved") and no_eval and outcome["complete"]:  # a partial run is not evaluated
        output.say(f"  `orch eval {run_dir.name}` evaluates the new results", markup=False)
    for name, size in outcome["cut"].items():
        if name in outcome.get("over_cap", {}) and size <= FULL_LOG_BYTES:
            # Under the limit when the first pass saw it: it grew past the bound that pass set
            # (a running job's log), or went away, while the whole logs were fetched.
            output.say(
                f"  {name} grew past the {size / (1 << 20):.1f} MB the fetch first saw while it was "
                f"fetched whole: fetched its last {TAIL_BYTES >> 20} MB (fetch again with --full-logs "
                "for all of it)",
                markup=False,
            )
            continue
        if name in outcome.get("over_cap", {}):
            job, file = name.split("/", 1)
            output.say(
                f"  {name} is {size / (1 << 20):.1f} MB on the host, over the {FULL_LOG_BYTES >> 30} GiB "
                f"--full-logs fetches of a log: fetched its last {TAIL_BYTES >> 20} MB "
                f"(`orch logs {run_dir.name} {job} -n N` shows more of it on the host)"
                if file == "log.txt"
                else f"  {name} is {size / (1 << 20):.1f} MB on the host, over the {FULL_LOG_BYTES >> 30} GiB "
                f"--full-logs fetches of a file: fetched its last {TAIL_BYTES >> 20} MB",
                markup=False,
            )
            continue
        output.say(
            f"  {name} is {size / (1 << 20):.1f} MB on the host: fetched its last "
            f"{TAIL_BYTES >> 20} MB (--full-logs fetches all of it)",
            markup=False,
        )
    if outcome["complete"] and not no_eval:
        try:
            metrics = evaluate_dir(run_dir, as_result=True)
        except KeyboardInterrupt:
            raise OrchError(
                f"interrupted while evaluating {run_dir.name}; its fetched results are verified in {run_dir / 'jobs'}",
                ExitCode.INTERRUPTED,
                hint=f"`orch eval {run_dir.name}` evaluates them",
            ) from None
        from orchestrator.results.report import pct  # numpy is loaded already: evaluate_dir imported it

        output.say(f"accuracy {pct(metrics['accuracy'])} -> {run_dir / 'metrics.json'}", markup=False)
        from orchestrator.results.evaluate import check_min_accuracy

        check_min_accuracy(metrics)  # exit 1, as `orch eval` and `run --wait`: the results stay fetched
    elif not outcome["complete"]:
        output.say("partial run: not evaluated (every class job must be done)")


def main(argv: List[str]) -> Optional[int]:
    """The exit code of a plain `orch fetch-results` command line; None when it is not one."""
    parsed = parse(argv)
    if parsed is None:
        return None
    from orchestrator import output

    output.set_quiet(parsed.pop("quiet"))
    return run(lambda: fetch_results(**parsed))
