"""A study's runs on their host: launch, status, fetch, resume (docs/STUDIES.md).

Each (member, seed) is an ordinary run (runs/<run-id>/, `orch runs` lists it) whose
local.json names its study; the study's own record is runs/studies/NAME/study.json, the
resolved study (every run, which pretrain it shares, a fingerprint of its config).  It is
written before the first run is launched and never silently rewritten: a study file
changed since its runs were launched is refused for the runs it would change.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set

from orchestrator.config.project import Project, copy_of
from orchestrator.config.studies import Study, StudyRun
from orchestrator.contract import records
from orchestrator.errors import ExitCode, OrchError, is_interrupt
from orchestrator.localfiles import atomic_write_text, writing
from orchestrator.runs import launch as runner
from orchestrator.runs.hostlaunch import RunOnHost
from orchestrator.runs.study_status import (  # noqa: F401  (study.status, ... are its API)
    RECORD,
    RunView,
    copied,
    files_changed,
    launch_facts,
    launched,
    load_record,
    no_record,
    note_launched,
    ready_to_fetch,
    record_path,
    resumable,
    run_entries,
    status,
    update_record,
)
from orchestrator.transport.base import Transport
from remote.jobstate import DONE, LOST, NO_RESULTS


def launched_ids(project: Project, record: Optional[Dict]) -> set:
    """The runs of RECORD (study.json; None: none yet) that were launched."""
    return {e["run_id"] for e in (record or {}).get("runs", []) if launched(project, e)}


def check_unchanged(project: Project, study: Study) -> Optional[Dict]:
    """Refuse STUDY when it would change or drop a run that was launched (a study's runs
    keep the config they were launched with), naming what changed; the study.json there,
    or None."""
    path = record_path(project, study.name)
    if not path.exists():
        return None
    old = load_record(project, study.name)
    _refuse_changes(project, study, old)
    return old


def _refuse_changes(project: Project, study: Study, old: Dict) -> None:
    from orchestrator.runs.study_edits import REFUSED, edits, refusal

    refused = [e for e in edits(old, study, launched_ids(project, old)) if e.kind in REFUSED]
    if refused:
        said = "; ".join(refusal(e) for e in refused[:3])
        raise OrchError(
            f"study {study.name} changed since its runs were launched: {said}"
            + (f"; and {len(refused) - 3} more changes" if len(refused) > 3 else "")
            + ": a study's runs keep the config they were launched with",
            ExitCode.RUN_STATE,
            hint=f"put it back as it was in {study.path}, or give the new version another name (`name:` in the "
            f"file, or a copy of it) to launch it as a new study; to start over, remove runs/{study.name}-* "
            f"and {record_path(project, study.name).parent}",
        )


def save_record(project: Project, study: Study) -> Dict:
    """Write study.json for STUDY, or bring the one there up to date: a run already
    launched must be the run this study file makes now (refused otherwise), and keeps the
    launch facts recorded for it."""
    path = record_path(project, study.name)
    doc = {**study.resolved(), "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if not path.exists():
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
        return doc

    def change(old: Dict) -> bool:
        _refuse_changes(project, study, old)
        doc["created"] = old.get("created", doc["created"])
        facts = {e["run_id"]: e["launched"] for e in old["runs"] if launch_facts(e) is not None}
        for entry in doc["runs"]:
            if entry["run_id"] in facts:
                entry["launched"] = facts[entry["run_id"]]
        old.clear()
        old.update(doc)
        return True

    return update_record(project, study.name, change)


def pending_edits(project: Project, study: Study) -> List:
    """How STUDY (its file now) differs from its study.json (study_edits.Edit); none before
    its first launch."""
    from orchestrator.runs.study_edits import edits

    old = recorded(project, study.name)
    return edits(old, study, launched_ids(project, old)) if old is not None else []


def recorded_words(edit, name: str, launching: List[str]) -> str:
    """What `study run` does with EDIT, one it does not refuse (LAUNCHING: the runs it launches)."""
    from orchestrator.runs.study_edits import NEW, NOT_LAUNCHED, consequence

    if edit.kind == NEW:
        return "launched now" if set(edit.runs) & set(launching) else consequence(edit, name)
    if edit.kind == NOT_LAUNCHED:
        return "recorded; only runs not launched yet take it"
    return f"recorded (no new runs: `orch study report {name}` includes it)"


def file_edits(project: Project, record: Dict, in_report: bool = False):
    """(the lines of a note, the study file's Study or None) when the study file or its base
    differ from the bytes study.json was written from; ([], None) when they do not.  A study
    file that cannot be read now is said, and study.json is what counts."""
    from orchestrator.config import studies as config
    from orchestrator.runs.study_edits import edits, note_lines

    if not files_changed(record):
        return [], None
    try:
        study = keep_launched_owners(project, config.load(project, record["file"], record.get("host") or None), record)
    except OrchError as exc:
        return [
            f"note: the study file of {record['name']} cannot be read now ({exc.message}): study.json is what counts"
        ], None
    found = edits(record, study, launched_ids(project, record))
    if not found:  # the bytes changed, not the study (a comment): compare the new bytes from now on
        try:
            update_record(project, record["name"], lambda doc: doc.update(files=study.files) is None)
        except OrchError:
            pass
    return (note_lines(record, found, in_report) if found else []), study


def with_file_report_keys(project: Project, record: Dict, say: Callable[[str], None]) -> Dict:
    """RECORD for `study report`, with the study file's ensembles and primary comparisons
    (`compare:`) when it has others: they change no run, so the report follows the file before
    `study run` records them, after saying how the study file differs from study.json.  An
    ensemble of a member the study has not recorded is left out, and so is a comparison of a
    row the study does not have."""
    notes, study = file_edits(project, record, in_report=True)
    for line in notes:
        say(line)
    if study is None:
        return record
    members = record.get("members") or {}
    ensembles = {}
    for name, parts in study.ensembles.items():
        absent = [m for m in parts if m not in members]
        if absent:
            say(
                f"note: ensemble {name} is left out: study {record['name']} has no member {absent[0]} yet "
                f"(`orch study run {record['name']}` launches it)"
            )
        else:
            ensembles[name] = parts
    compare = []
    for a, b in study.compare:
        absent = [r for r in (a, b) if r not in members and r not in ensembles]
        if absent:
            say(
                f"note: the primary comparison {a} vs {b} is left out: study {record['name']} has no member "
                f"{absent[0]} yet (`orch study run {record['name']}` launches it)"
            )
        else:
            compare.append([a, b])
    if study.compare and not compare:
        say("note: no primary comparison is left: Holm's correction runs over every pair")
    return {**record, "ensembles": ensembles, "compare": compare}


def keep_launched_owners(project: Project, study: Study, record: Optional[Dict] = None) -> Study:
    """STUDY with its shared pretrains owned by launched runs where they were (config.share_pretrain):
    read from the file alone, a member added above them would own them."""
    from orchestrator.config.studies import share_pretrain

    record = record if record is not None else recorded(project, study.name)
    if record is not None:
        share_pretrain(study, launched_ids(project, record))
    return study


def recorded(project: Project, name: str) -> Optional[Dict]:
    """Study NAME's study.json, or None before its first launch."""
    return load_record(project, name) if record_path(project, name).exists() else None


def not_launched(project: Project, study: Study, runs: List[StudyRun]) -> List[StudyRun]:
    """RUNS that were never launched: no folder here, and study.json does not say they were
    (a run whose folder was deleted here is still on its host: `orch study fetch` restores it)."""
    done = launched_ids(project, recorded(project, study.name))
    return [r for r in runs if r.run_id not in done and not project.run_dir(r.run_id).exists()]


def with_owners(study: Study, chosen: List[StudyRun], project: Project) -> List[StudyRun]:
    """CHOSEN plus the runs that train a pretrain one of them starts from (when not launched
    yet), owners first: a run never waits for a pretrain job nobody launched."""
    wanted = {r.run_id for r in chosen}
    done = launched_ids(project, recorded(project, study.name))
    for run in chosen:
        if run.pretrain_from and run.pretrain_from not in done and not project.run_dir(run.pretrain_from).exists():
            wanted.add(run.pretrain_from)
    ordered = [r for r in study.runs if r.run_id in wanted]
    return [r for r in ordered if r.owns_pretrain] + [r for r in ordered if not r.owns_pretrain]


def mark_run(project: Project, run: StudyRun, study: str) -> None:
    """Name the study in the run's local.json (`orch runs` and the report group by it), and
    keep in study.json where the run was launched (its folder here may be deleted later)."""
    local = records.update_record(
        project.run_dir(run.run_id), {"study": {"name": study, "member": run.member, "seed": run.seed}}
    )
    note_launched(project, study, {run.run_id: local}, fresh=True)


def launch_runs(
    project: Project, transport: Transport, study: Study, runs: List[StudyRun], say: Callable[[str], None]
) -> List[str]:
    """Launch RUNS (owners of shared pretrains first); return the run ids launched.  A run
    whose pretrain owner failed to launch is not launched (it would wait for nothing).

    Ctrl-C stops it all: the run being launched is kept as the launch left it (named in the
    study when any of it may be on the host, so that `study status` and `study resume` see
    it as launched and never launch it twice), and the message says what was launched."""
    launched: List[str] = []
    failed: Dict[str, str] = {}
    first: Optional[OrchError] = None  # the first launch that failed: its exit code and hint
    current: Optional[StudyRun] = None
    try:
        for run in runs:
            if run.pretrain_from in failed:
                failed[run.run_id] = f"its pretrain run {run.pretrain_from} did not launch"
                say(f"{run.run_id}: not launched: {failed[run.run_id]}")
                continue
            current = run
            try:
                launch_one(project, transport, study, run, say, launched)
            except OrchError as exc:
                if is_interrupt(exc):
                    raise
                failed[run.run_id] = exc.message
                first = first or exc
                say(f"{run.run_id}: not launched: {exc.message}")
                current = None
                continue
            current = None
    except (KeyboardInterrupt, OrchError) as exc:
        if not is_interrupt(exc):
            raise
        raise interrupted_launch(project, study, runs, launched, failed, current) from None
    if failed:
        run_id, why = next(iter(failed.items()))
        raise OrchError(
            f"{len(failed)} of {len(runs)} runs of study {study.name} did not launch (first: {run_id}: {why})",
            first.code if first is not None else ExitCode.REMOTE,
            hint=(first.hint if first is not None and first.hint else "")
            or f"`orch study resume {study.name}` launches what is missing once the cause is fixed",
        )
    return launched


def launch_one(
    project: Project, transport: Transport, study: Study, run: StudyRun, say: Callable[[str], None], launched: List[str]
) -> None:
    """Launch RUN of STUDY, name the study in it, and say so; its id joins LAUNCHED as soon as
    it is on the host.  A run already on the host under its name (its folder here deleted,
    study.json too old to say where it went) is RunOnHost, with how to get out of it."""
    start = time.time()
    try:
        result = runner.launch(project, transport, run.exp, run.run_id)
    except RunOnHost as exc:
        raise OrchError(
            f"already on {transport.host.name} ({exc.where}) with no folder here, and study {study.name}'s "
            "record is older than the launch records orch restores a run's folder from",
            ExitCode.RUN_STATE,
            hint=f"to keep its results, put runs/{run.run_id} back from a backup; to launch it again, remove it "
            f"on {transport.host.name} (`rm -rf {exc.where}` there), then `orch study resume {study.name}`",
        ) from None
    launched.append(run.run_id)
    mark_run(project, run, study.name)
    shared = f", pretrain of {run.pretrain_from}" if run.pretrain_from else ""
    say(
        f"launched {run.run_id} ({run.member}, seed {run.seed}): "
        f"{', '.join(j['name'] for j in result.jobs)}{shared} ({time.time() - start:.1f} s)"
    )


def interrupted_launch(
    project: Project,
    study: Study,
    runs: List[StudyRun],
    launched: List[str],
    failed: Dict[str, str],
    current: Optional[StudyRun],
) -> OrchError:
    """The message for a Ctrl-C in launch_runs, after naming the study in every run of it
    that has a local record (a launch interrupted after its record was written may have
    started jobs: `orch status RUN` shows which, `orch study resume` starts the rest)."""
    by_id = {r.run_id: r for r in runs}
    partly = (
        current.run_id if current is not None and (project.run_dir(current.run_id) / "local.json").is_file() else None
    )
    for run_id in launched + ([partly] if partly else []):
        try:
            if "study" not in records.load_record(project.run_dir(run_id), to_reach=False):
                mark_run(project, by_id[run_id], study.name)
        except OrchError:
            pass  # `orch runs` shows it without its study; status and resume go by the study's record
    done = set(launched) | set(failed) | ({partly} if partly else set())
    untouched = [r.run_id for r in runs if r.run_id not in done]
    parts = [f"launched {', '.join(launched)}" if launched else "no run launched"]
    if partly:
        parts.append(f"{partly} may be partly launched (its launch was interrupted)")
    if failed:
        parts.append(f"failed to launch {', '.join(failed)}")
    if untouched:
        parts.append(f"not launched: {listed_runs(untouched)}")
    return OrchError(
        f"interrupted: study {study.name}: " + "; ".join(parts),
        ExitCode.INTERRUPTED,
        hint=f"`orch study status {study.name}` shows each run; `orch study resume {study.name}` launches what is "
        "missing and starts the jobs an interrupted launch left out",
    )


def listed_runs(run_ids: List[str], shown: int = 4) -> str:
    """RUN_IDS in a message: the first SHOWN, then "and N more"."""
    more = len(run_ids) - shown
    return ", ".join(run_ids[:shown]) + (f" and {more} more" if more > 0 else "")


# ------------------------------------------------------------------ dry run: the plan

PATH_KEYS = ("path", "test_path", "unlabelled_path", "name")  # host paths in a run.yaml: not the config


def config_signature(exp_doc: Dict) -> str:
    """What makes two runs cost the same: the config without seeds, the shared-pretrain
    link, the data's paths (a run.yaml holds host paths) and its class list."""
    doc = json.loads(json.dumps(exp_doc))
    for section in ("train", "pretrain", "score"):
        doc.get(section, {}).pop("seed", None)
    doc.get("pretrain", {}).pop("from_run", None)
    for key in PATH_KEYS:
        doc.get("data", {}).pop(key, None)
    # a config leaves classes empty to take them from the data; the launched run.yaml lists
    # them.  Jobs are matched by role (class name) anyway, so they are not part of the cost key.
    doc.get("data", {}).pop("classes", None)
    doc.pop("name", None), doc.pop("host", None), doc.pop("description", None)
    return json.dumps(doc, sort_keys=True)


def measured_seconds(project: Project, host: str) -> Dict[str, Dict[str, float]]:
    """Config signature -> {role: seconds of one job} from the evaluated runs of HOST."""
    found: Dict[str, Dict[str, float]] = {}
    for run_dir in project.list_runs():
        try:
            local = records.load_record(run_dir)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            doc = records.load_resolved(run_dir)
        except (OrchError, OSError, ValueError):
            continue
        if local.get("host") != host or not isinstance(metrics, dict):
            continue
        jobs = (metrics.get("timings") or {}).get("jobs") or {}
        per_role: Dict[str, float] = {}
        for job in jobs.values():
            if isinstance(job, dict) and isinstance(job.get("seconds"), (int, float)):
                per_role[str(job.get("role"))] = max(per_role.get(str(job.get("role")), 0.0), float(job["seconds"]))
        if per_role:
            found[config_signature(doc["experiment"])] = per_role
    return found


def preview(project: Project, study: Study, chosen: List[StudyRun]) -> List[str]:
    """`orch study run --dry-run`: the runs, their jobs, who shares which pretrain, and a
    time estimate from this host's evaluated runs of the same config where there is one."""
    from orchestrator.runs.plan import plan_jobs
    from orchestrator.runs.state import fmt_duration
    from remote.spec import to_dict

    check_unchanged(project, study)  # the launch would refuse it: so does its dry run
    classes = runner.classes_for(chosen[0].exp, project.root) if chosen else []
    measured = measured_seconds(project, study.host)
    sharers: Dict[str, int] = {}
    for run in study.runs:
        if run.pretrain_from:
            sharers[run.pretrain_from] = sharers.get(run.pretrain_from, 0) + 1
    todo = not_launched(project, study, chosen)
    lines = [
        f"study {study.name} on {study.host}: {len(study.members)} members x {len(study.seeds)} seeds = "
        f"{len(study.runs)} runs; {len(todo)} of the {len(chosen)} chosen would launch now (base {study.base})",
    ]
    rows: List[List[str]] = []
    total, unknown = 0.0, 0
    for run in chosen:
        jobs = plan_jobs(run.exp, classes)
        names = ", ".join(j.name for j in jobs)
        if run.pretrain_from:
            pre = f"from {run.pretrain_from}"
        elif run.exp.pretrain.enabled:
            shared = sharers.get(run.run_id, 0)
            pre = f"trains it (shared by {shared} more)" if shared else "trains its own"
        else:
            pre = "-"
        per_role = measured.get(config_signature(to_dict(run.exp)))
        if per_role:
            seconds = sum(per_role.get(j.role, 0.0) for j in jobs)
            total += seconds
            est = fmt_duration(seconds)
        else:
            unknown += 1
            est = "-"
        state = "" if run in todo else "  (launched)"
        rows.append([run.run_id, run.member, str(run.seed), names, pre, est + state])
    lines += _columns(["run", "member", "seed", "jobs", "pretrain", "estimate"], rows, right={2})
    if unknown == len(chosen):
        lines.append(f"job time: no estimate (no evaluated run of these configs on {study.host} yet)")
    else:
        lines.append(
            f"job time: about {fmt_duration(total)} summed over jobs, from {study.host}'s evaluated runs"
            + (f"; no estimate for {unknown} runs" if unknown else "")
        )
    return lines


def _columns(header: List[str], rows: List[List[str]], right: Set[int]) -> List[str]:
    """HEADER and ROWS as lines of columns as wide as their widest cell (two spaces apart;
    the columns in RIGHT right-aligned), so a long member or run name keeps them aligned."""
    widths = [max(len(cell) for cell in col) for col in zip(header, *rows)]
    return [
        "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        for row in [header, *rows]
    ]


# ------------------------------------------------------------------ resume, report


def resume_runs(
    project: Project,
    transport_for: Callable[[str], Transport],
    record: Dict,
    plan: Optional[Study],
    todo: List[RunView],
    say: Callable[[str], None],
) -> None:
    """Relaunch TODO: runs that train a shared pretrain first (the others wait for it).  A
    run never launched, or launched but gone both here and on its host, is launched from
    PLAN (the study file)."""
    entries = {e["run_id"]: e for e in record["runs"]}
    ordered = sorted(todo, key=lambda v: bool(entries[v.run_id].get("pretrain_from")))
    if plan is not None:
        save_record(project, plan)  # refuses a study file changed for launched runs
    by_id = {r.run_id: r for r in plan.runs} if plan is not None else {}
    problems: List[str] = []
    hints: List[str] = []
    resumed: List[str] = []
    current: Optional[RunView] = None
    launching = False
    try:
        for view in ordered:
            current = view
            try:
                launching = needs_launch(project, view)
                if launching:
                    if view.run_id not in by_id:
                        raise OrchError(f"the study file no longer makes run {view.run_id}", ExitCode.RUN_STATE)
                    launch_one(project, transport_for(record["host"]), plan, by_id[view.run_id], say, [])
                elif not (project.runs / view.run_id / "local.json").is_file():
                    raise OrchError(
                        f"no local record (launched on {view.host or record['host']}), and it was not restored: "
                        "its jobs cannot be relaunched without it",
                        ExitCode.RUN_STATE,
                    )
                else:
                    local = records.load_record(project.run_dir(view.run_id))
                    relaunched = runner.resume(project, transport_for(local["host"]), view.run_id)
                    say(f"relaunched {', '.join(relaunched)} of {view.run_id}")
                resumed.append(view.run_id)
            except OrchError as exc:
                if is_interrupt(exc):
                    raise
                problems.append(f"{view.run_id}: {exc.message}")
                hints.append(exc.hint or "")
                say(f"{view.run_id}: {exc.message}")
            current = None
    except (KeyboardInterrupt, OrchError) as exc:
        if not is_interrupt(exc):
            raise
        partly = current is not None and launching and current.run_id not in resumed
        if partly and (project.runs / current.run_id / "local.json").is_file():
            try:  # as launch_runs does for a launch it stopped: the study's, never launched twice
                mark_run(project, by_id[current.run_id], record["name"])
            except OrchError:
                pass
        raise interrupted_resume(project, record["name"], ordered, resumed, problems, current) from None
    if problems:
        several = len(problems) > 1
        raise OrchError(
            f"{len(problems)} of {len(ordered)} runs of study {record['name']} {'were' if several else 'was'} "
            "not resumed: " + "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else ""),
            ExitCode.RUN_STATE,
            hint=hints[0] if not several else f"`orch study status {record['name']}` shows each run",
        )


def needs_launch(project: Project, view: RunView) -> bool:
    """Whether `study resume` launches VIEW's run anew: never launched, or its record is gone
    here and the host has none either."""
    gone = view.state == LOST and not (project.runs / view.run_id / "local.json").is_file()
    return view.state == "not launched" or gone


def interrupted_resume(
    project: Project,
    name: str,
    ordered: List[RunView],
    resumed: List[str],
    problems: List[str],
    current: Optional[RunView],
) -> OrchError:
    """The message for a Ctrl-C in resume_runs: what was resumed, what may be, what was not."""
    parts = [f"resumed {', '.join(resumed)}" if resumed else "no run resumed"]
    stopped = current.run_id if current is not None and current.run_id not in resumed else None
    if stopped is not None:
        if current.state != "not launched":
            parts.append(f"the relaunch of {stopped} stopped: some of its jobs may have started again")
        elif (project.run_dir(stopped) / "local.json").is_file():
            parts.append(f"{stopped} may be partly launched (its launch was interrupted)")
        else:
            stopped = None  # its launch stopped before anything of it was recorded: not launched
    failed = {p.split(": ", 1)[0] for p in problems}
    if failed:
        parts.append(f"not resumed (failed): {', '.join(sorted(failed))}")
    untouched = [v.run_id for v in ordered if v.run_id not in set(resumed) | failed | {stopped}]
    if untouched:
        parts.append(f"not resumed: {listed_runs(untouched)}")
    return OrchError(
        f"interrupted: study {name}: " + "; ".join(parts),
        ExitCode.INTERRUPTED,
        hint=f"`orch study status {name}` shows each run; `orch study resume {name}` resumes the rest",
    )


def member_runs(project: Project, record: Dict) -> List:
    """What the report gets: each run's fetched folder, or why it has none (from the local
    record: no SSH)."""
    from orchestrator.results.study_report import MemberRun

    out = []
    for entry in record["runs"]:
        run_dir = project.runs / entry["run_id"]
        missing = ""
        if not (run_dir / "local.json").is_file():
            facts = launch_facts(entry)
            missing = no_record(record["name"], facts["host"]) if facts is not None else "not launched"
        elif copy_of(run_dir) is not None:  # another run's results under this run's name: never counted
            missing = copied(run_dir, copy_of(run_dir))
        else:
            local = records.load_record(run_dir)
            if local.get("state") != "fetched" or not (run_dir / "jobs").is_dir():
                states = local.get("job_states") or {}
                bad = {k: v for k, v in states.items() if v in NO_RESULTS}
                if bad:
                    missing = "; ".join(f"{k} {v}" for k, v in sorted(bad.items()))
                elif states and set(states.values()) == {DONE}:
                    missing = "done, not fetched yet (`orch study fetch`)"
                else:
                    missing = "not finished when last seen (`orch study status`)"
        out.append(
            MemberRun(entry["member"], int(entry["seed"]), entry["run_id"], None if missing else run_dir, missing)
        )
    return out


def report(project: Project, record: Dict, out_dir: Path) -> Dict:
    from orchestrator.results.study_report import write_study_report

    return write_study_report(out_dir, record, member_runs(project, record))
