"""Pure builders: experiment -> job list -> the exact commands a host runs.

Nothing here touches the network, so the generated commands are golden-file tested.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

from remote.spec import Experiment

from orchestrator.transport import shell
from orchestrator.errors import ExitCode, OrchError
from orchestrator.config.project import check_name, safe_name


@dataclass
class JobSpec:
    name: str
    role: str  # pretrain | class | classifier
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


def plan_jobs(exp: Experiment, classes: Sequence[str], gpus: Sequence[str]) -> List[JobSpec]:
    """One job per class (or one classifier job), plus an optional pretrain job first.

    GPUs are handed out round-robin; a job whose GPU is taken waits (`after`) for the
    previous job on that GPU, so more jobs than GPUs simply queue on the host.
    """
    if not classes:
        raise OrchError("the experiment has no classes (data.classes is empty and no labels were found)",
                        ExitCode.CONFIG)
    jobs: List[JobSpec] = []
    requires: List[str] = []
    if exp.pretrain.enabled:
        jobs.append(JobSpec(name="pretrain", role="pretrain"))
        requires = ["pretrain"]
    if exp.model.kind == "classifier":
        jobs.append(JobSpec(name="classifier", role="classifier", requires=list(requires)))
    else:
        names = set()
        for label in classes:
            name = class_job_name(exp, label)
            # Case-folded: job folders must not collide on a macOS/Windows laptop either.
            if name.lower() in names or name.lower() == "pretrain":
                raise OrchError(f"two classes map to the job name {name!r} (names are compared ignoring case)",
                                ExitCode.CONFIG, hint="give each class a distinct name in data.class_names")
            names.add(name.lower())
            jobs.append(JobSpec(name=name, role="class", label=label, requires=list(requires)))
    if gpus:
        last_on_gpu: Dict[str, str] = {}
        start = 1 if exp.pretrain.enabled else 0  # pretrain runs alone, before the rest
        if exp.pretrain.enabled:
            jobs[0].gpu = gpus[0]
        for i, job in enumerate(jobs[start:]):
            gpu = gpus[i % len(gpus)]
            job.gpu = gpu
            if gpu in last_on_gpu:
                job.after = [last_on_gpu[gpu]]
            last_on_gpu[gpu] = job.name
    return jobs


def session_name(run_id: str, job: str) -> str:
    # Must match remote/hostctl.session_name.
    return f"orch-{run_id}-{job}"


def job_command(python: str, run_dir: str, code_dir: str, job: JobSpec) -> str:
    """The shell text tmux runs for one job: the wrapper around the payload."""
    wrapper = [python, "-m", "remote.wrapper", "--job-dir", f"{run_dir}/jobs/{job.name}"]
    for dep in job.requires:
        wrapper += ["--requires", dep]
    for dep in job.after:
        wrapper += ["--after", dep]
    payload = [python, "-m", "remote.run_job", "--run-dir", run_dir, "--job", job.name]
    env = {"PYTHONPATH": code_dir, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": job.gpu}
    # cd inside the quoted command, not tmux's `new-session -c DIR`: tmux expands #(...)
    # and #{...} in DIR, so a workdir holding `#(cmd)` ran cmd on every launch.
    return shell.in_dir(code_dir, shell.with_env(wrapper + ["--"] + payload, env))


def launch_plan(run_id: str, python: str, run_dir: str, code_dir: str, jobs: Sequence[JobSpec]) -> Dict:
    """What `remote.hostctl launch` reads on stdin."""
    items = []
    for job in jobs:
        item = {"name": job.name, "session": session_name(run_id, job.name)}
        if "#" not in code_dir:
            # Only for the hostctl of snapshots made before the command did its own cd
            # (a resumed old run): it passes `cwd` to tmux -c, which expands #(...).
            item["cwd"] = code_dir
        item.update({"job_dir": f"{run_dir}/jobs/{job.name}", "command": job_command(python, run_dir, code_dir, job)})
        items.append(item)
    return {"jobs": items}


def hostctl(python: str, code_dir: str, *args: str) -> str:
    """Shell text to run the stdlib host helper from a code snapshot.

    -S: it needs no site-packages, and skipping them saves start-up on every status call.
    """
    return shell.in_dir(code_dir, shell.join([python, "-S", "-m", "remote.hostctl", *args]))
