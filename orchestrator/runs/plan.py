"""Pure builders: experiment -> job list -> the exact commands a host runs.

Nothing here touches the network, so the generated commands are golden-file tested.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

from orchestrator.config.project import check_name, safe_name
from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport import shell
from remote.backends.tmux import session_name
from remote.spec import Experiment, training_role


@dataclass
class PlannedJob:
    """A job of a run's plan, as run.yaml records it (docs/CONTRACT.md)."""

    name: str
    role: str  # pretrain | class | classifier | score
    label: Optional[str] = None
    requires: List[str] = field(default_factory=list)
    after: List[str] = field(default_factory=list)
    gpu: str = ""

    def to_dict(self) -> Dict:
        return asdict(self)


def class_job_name(exp: Experiment, label: str) -> str:
    # Default names come from the label (e.g. "0.0" from a pandas CSV -> class-0_0);
    # names given in data.class_names are the user's and are checked as they are.
    name = exp.data.class_names.get(label) or f"class-{safe_name(label)}"
    try:
        return check_name("job", name)
    except OrchError as exc:
        raise OrchError(
            f"class {label!r} gives the job name {name!r}, which is not allowed",
            ExitCode.CONFIG,
            hint="map labels to safe job names with data.class_names, e.g. {'0': neg, '1': pos}",
        ) from exc


SCORE_JOB = "score"  # the joint scoring job of an adaptive-draws run


def plan_jobs(exp: Experiment, classes: Sequence[str]) -> List[PlannedJob]:
    """One job per class (or one classifier job), plus an optional pretrain job first that
    every other job requires (or, with pretrain.from_run, another run's pretrain job).
    With ``score.mdlm_draws: adaptive`` the class jobs only train, and one ``score`` job,
    which requires them all, scores with every class model at once (docs/ADAPTIVE_DRAWS.md).
    Where each runs (GPUs, turns) is the job backend's call (``JobBackend.place``)."""
    if not classes:
        raise OrchError(
            "the experiment has no classes (data.classes is empty and no labels were found)", ExitCode.CONFIG
        )
    jobs: List[PlannedJob] = []
    requires: List[str] = []
    if exp.pretrain.enabled and exp.pretrain.from_run:
        # Another run's pretrain job (a study's shared one): RUN/JOB names it in the same
        # host workdir, and the wrapper waits for it to end done like for one of its own.
        requires = [f"{exp.pretrain.from_run}/pretrain"]
    elif exp.pretrain.enabled:
        jobs.append(PlannedJob(name="pretrain", role="pretrain"))
        requires = ["pretrain"]
    if training_role(exp.model.kind) == "classifier":  # one job learns every class
        jobs.append(PlannedJob(name="classifier", role="classifier", requires=list(requires)))
        return jobs
    names = set()
    reserved = ("pretrain", SCORE_JOB) if exp.score.is_adaptive else ("pretrain",)
    for label in classes:
        name = class_job_name(exp, label)
        # Case-folded: job folders must not collide on a macOS/Windows laptop either.
        if name.lower() in reserved:
            raise OrchError(
                f"class {label!r} maps to the job name {name!r}, which orch keeps for its "
                f"{'pretraining' if name.lower() == 'pretrain' else 'scoring'} job (names are compared ignoring case)",
                ExitCode.CONFIG,
                hint=f"give class {label!r} another name in data.class_names",
            )
        if name.lower() in names:
            raise OrchError(
                f"two classes map to the job name {name!r} (names are compared ignoring case)",
                ExitCode.CONFIG,
                hint="give each class a distinct name in data.class_names",
            )
        names.add(name.lower())
        jobs.append(PlannedJob(name=name, role="class", label=label, requires=list(requires)))
    if exp.score.is_adaptive:
        jobs.append(PlannedJob(name=SCORE_JOB, role="score", requires=[j.name for j in jobs if j.role == "class"]))
    return jobs


def job_command(python: str, run_dir: str, code_dir: str, job: PlannedJob, backend) -> str:
    """The shell text a job backend runs for one job: the wrapper around the payload.
    ``backend``: the run's JobBackend, which adds its environment and wrapper options, and
    may ask that the command replace the shell (a Slurm batch script)."""
    wrapper = [python, "-m", "remote.wrapper", "--job-dir", f"{run_dir}/jobs/{job.name}"]
    for dep in job.requires:
        wrapper += ["--requires", dep]
    for dep in job.after:
        wrapper += ["--after", dep]
    wrapper += backend.wrapper_args()
    payload = [python, "-m", "remote.run_job", "--run-dir", run_dir, "--job", job.name]
    env = {"PYTHONPATH": code_dir, "PYTHONUNBUFFERED": "1"}
    env.update(backend.job_env(job))
    env.update(backend.queue_env(job, run_dir))
    command = shell.with_env(wrapper + ["--"] + payload, env)
    if backend.exec_command:
        command = "exec " + command
    # cd inside the quoted command, not tmux's `new-session -c DIR`: tmux expands #(...)
    # and #{...} in DIR, so a workdir holding `#(cmd)` ran cmd on every launch.
    return shell.in_dir(code_dir, command)


def launch_plan(
    run_id: str,
    python: str,
    run_dir: str,
    code_dir: str,
    jobs: Sequence[PlannedJob],
    backend,
    handles: Optional[Dict[str, str]] = None,
) -> Dict:
    """What `remote.hostctl launch` reads on stdin (docs/CONTRACT.md, "hostctl launch").
    ``backend``: the run's JobBackend; ``handles``: jobs already done, by name
    (a resume), for backends that wire dependencies themselves."""
    items = []
    for job in jobs:
        item = {"name": job.name, "session": session_name(run_id, job.name)}
        if "#" not in code_dir:
            # Only for the hostctl of snapshots made before the command did its own cd
            # (a resumed old run): it passes `cwd` to tmux -c, which expands #(...).
            item["cwd"] = code_dir
        item.update(
            {
                "job_dir": f"{run_dir}/jobs/{job.name}",
                "command": job_command(python, run_dir, code_dir, job, backend),
                "requires": list(job.requires),
                "after": list(job.after),
            }
        )
        items.append(item)
    plan = {"run_id": run_id, **backend.plan_fields(), "jobs": items}
    if handles:
        plan["handles"] = dict(handles)
    return plan
