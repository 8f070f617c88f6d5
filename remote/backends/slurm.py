"""Slurm: each job is one batch job, submitted with sbatch from the login node.

The job's handle is its Slurm job id.  Slurm places the job (GPUs from --gres), orders it
after the jobs it requires (afterok), and may stop it and run it again (requeue, time
limit): the batch script `exec`s the wrapper so Slurm's signals reach it, and the wrapper
(--requeueable) records such a stop as not-an-end.  Slurm forgets a finished job after
MinJobAge, so everything durable is in the job folder; Slurm is asked only while it knows.

Every command is an argv list (no shell); the one shell text is the batch script this
module writes, whose every value is quoted with shlex.  Standard library only.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from typing import Dict, List, Optional, Tuple

from remote.backends.base import Backend, BackendError, Refused, Unanswered
from remote.files import BadFile, open_regular, read_dict
from remote.jobstate import dependency_dir

SCRIPT = "slurm.sh"  # in the job folder: what sbatch runs (and reruns from the top on a requeue)
OUTPUT = "slurm.out"  # the batch job's own output (the wrapper writes log.txt itself)

# Slurm states in which the job is still Slurm's (queued, starting, running, being requeued).
LIVE = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
    "RESV_DEL_HOLD",
}
# Ended without the wrapper having had a say: the state orch records, and why in Slurm's words.
ENDED = {
    "CANCELLED": "cancelled",
    "TIMEOUT": "failed",
    "NODE_FAIL": "failed",
    "OUT_OF_MEMORY": "failed",
    "BOOT_FAIL": "failed",
    "DEADLINE": "failed",
    "FAILED": "failed",
    "PREEMPTED": "failed",
}
WHY = {
    "TIMEOUT": "Slurm stopped it at its time limit",
    "NODE_FAIL": "its node failed",
    "OUT_OF_MEMORY": "Slurm killed it: out of memory",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "Slurm stopped it at its deadline",
    "PREEMPTED": "preempted by Slurm and not requeued",
    "CANCELLED": "cancelled in Slurm (scancel)",
    "FAILED": "the Slurm batch job failed before the wrapper ran (`orch logs` shows Slurm's output of it, slurm.out)",
}
# Slurm's reason for a FAILED job -> what it means and where to look.
WHY_FAILED = {
    "JobLaunchFailure": (
        "Slurm could not launch the batch job on its node: check that the host's workdir is on a "
        "filesystem the compute nodes share (slurmd cannot open slurm.out in a job folder it does not see)"
    ),
}
# What Slurm's commands say when its controller does not answer (down, restarting, or too busy
# to take a request): no refusal of the job, only of the moment - a later try may work.
UNANSWERED = (
    "Unable to contact slurm controller",
    "Socket timed out",
    "Slurm temporarily unable to accept job",
    "Resource temporarily unavailable",
)
SQUEUE_FORMAT = "%i|%T|%r|%N|%P|%e"
SACCT_FIELDS = "JobID,State,Reason,NodeList,Partition,End"
# squeue and sacct print times (%e, End: when the job ended) as seconds since 1970 with this:
# no time zone or site format to guess.
TIME_FORMAT = {"SLURM_TIME_FORMAT": "%s"}

# What slurmstepd writes into the batch job's output (slurm.out) when Slurm stops the job:
#   slurmstepd: error: *** JOB 123 ON node7 CANCELLED AT 2026-12-02T00:40:55 ***      (scancel)
#   ... CANCELLED AT <time> DUE TO TIME LIMIT / PREEMPTION / NODE FAILURE, SEE ... / JOB REQUEUE ***
# The job's own record of how it ended, for when Slurm has forgotten the job (MinJobAge) and
# keeps no accounting to ask: the Slurm state each means (a requeue is not an end).
NOTICE = re.compile(r"\*\*\* JOB ([0-9]+) ON \S+ CANCELLED AT ([0-9T:-]+)(?: DUE TO ([A-Z ]+?))?(?:,[^*\n]*)? \*\*\*")
NOTICE_STATES = {"": "CANCELLED", "TIME LIMIT": "TIMEOUT", "PREEMPTION": "PREEMPTED", "NODE FAILURE": "NODE_FAIL"}
NOTICE_TAIL = 65536  # bytes of slurm.out read for it (the payload's output is copied there too)

# A job submitted again (`orch run --resume`) is a new Slurm job whose SLURM_RESTART_COUNT
# starts at 0: its batch script carries the requeues of the job's earlier submissions on.
EARLIER_REQUEUES = "ORCH_EARLIER_REQUEUES"


def _count(value) -> int:
    text = str(value or "").strip()
    # isascii: str.isdigit() also takes '²', which int() refuses with a ValueError.
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else 0


def earlier_requeues(job_dir: str) -> int:
    """The earlier submissions' requeues that the job's current batch script carries (0: none,
    or no batch script): the count of a resubmitted job whose wrapper has not run yet."""
    try:
        fd = open_regular(os.path.join(job_dir, SCRIPT))
    except BadFile:
        return 0
    if fd is None:
        return 0
    try:
        text = os.read(fd, 65536).decode("utf-8", "replace")
    except OSError:
        return 0
    finally:
        os.close(fd)
    found = re.search(rf"^export {EARLIER_REQUEUES}=([0-9]+)$", text, re.M)
    return _count(found.group(1)) if found else 0


def restarts(env) -> int:
    """Times Slurm has requeued this Slurm job (this submission): what slurm.max_requeues bounds."""
    return _count(env.get("SLURM_RESTART_COUNT"))


def requeues(env) -> int:
    """Times the run's job has been requeued, over all its submissions: status.json's and the
    manifest's `requeues` (docs/CONTRACT.md, "On a Slurm host")."""
    return _count(env.get(EARLIER_REQUEUES)) + restarts(env)


# Environment modules: `module` is a shell function that a non-login batch shell may lack.
_MODULE_INIT = (
    "command -v module >/dev/null 2>&1 || for f in /etc/profile.d/lmod.sh "
    "/usr/share/lmod/lmod/init/bash /etc/profile.d/modules.sh /usr/share/modules/init/bash; "
    'do [ -r "$f" ] && . "$f" && break; done'
)


def batch_script(job: dict, modules: List[str]) -> str:
    """The batch script of JOB: load the modules, then replace the shell by the job command
    (quoted by the controller), so that `--signal=B:...` reaches the wrapper itself."""
    lines = [
        "#!/bin/bash",
        f"# orch job {shlex.quote(str(job.get('run_id', '')))}/{shlex.quote(job['name'])}: "
        "Slurm reruns this script from the top when it requeues the job",
    ]
    earlier = _count(job.get("earlier_requeues"))
    if earlier:
        lines.append(f"export {EARLIER_REQUEUES}={earlier}")
    if modules:
        lines.append(_MODULE_INIT)
        for module in modules:
            q = shlex.quote(module)
            lines.append(f"module load {q} || {{ echo orch: module load {q} failed >&2; exit 3; }}")
    lines.append(job["command"])
    return "\n".join(lines) + "\n"


def job_name(job: dict) -> str:
    return f"orch-{job.get('run_id', '')}-{job['name']}"


def when(text: str) -> Optional[float]:
    """A time Slurm printed: seconds since 1970 (TIME_FORMAT), or its standard local
    `2026-12-02T00:40:55`; None for anything else ("Unknown", "NONE", "N/A")."""
    text = text.strip()
    if text.isascii() and text.isdigit():  # not '²' (isdigit, but float() refuses it); any length: inf
        value = float(text)
    else:
        try:
            value = time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
        except (ValueError, OverflowError):
            return None
    return value if 0 < value < 1e11 else None


def _rows(text: str) -> Dict[str, dict]:
    """`ID|STATE|REASON|NODES|PARTITION|END` lines (squeue -o, sacct -P) -> by job id.  Other
    lines (a job step's `123.batch`, noise) are skipped; sacct's "CANCELLED by 0" is CANCELLED."""
    rows = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 5 and parts[0].isdigit():
            rows[parts[0]] = {
                "state": parts[1].split()[0] if parts[1].strip() else "",
                "reason": parts[2],
                "node": parts[3],
                "partition": parts[4],
                "end": when(parts[5]) if len(parts) > 5 else None,
            }
    return rows


def notice_end(job_dir: str, job_id: str, since: float) -> Optional[dict]:
    """How Slurm ended job JOB_ID, from slurmstepd's last notice of it in the job's slurm.out
    (NOTICE): ``{"state", "reason", "at"}``, or None when it left none at or after SINCE (the
    attempt's start: an earlier run's notice is not this one's end) or the last one is a requeue."""
    try:
        fd = open_regular(os.path.join(job_dir, OUTPUT))
    except BadFile:
        return None
    if fd is None:
        return None
    try:
        os.lseek(fd, max(0, os.fstat(fd).st_size - NOTICE_TAIL), os.SEEK_SET)
        text = os.read(fd, NOTICE_TAIL).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    found = [m for m in NOTICE.finditer(text) if m.group(1) == job_id]
    if not found:
        return None
    stamp, due = found[-1].group(2), (found[-1].group(3) or "").strip()
    at = when(stamp)
    state = NOTICE_STATES.get(due)
    if state is None or at is None or at < since - 1:  # slurmstepd's clock has whole seconds
        return None
    return {
        "state": ENDED[state],
        "reason": f"{WHY[state]} at {stamp} (Slurm's notice in slurm.out; Slurm no longer lists job {job_id})",
        "at": at,
    }


class SlurmBackend(Backend):
    name = "slurm"
    same_host = False  # jobs run on compute nodes: a pid in a job folder is not a process here
    starts_at_once = False  # a submitted job may wait in the queue: submission is the start
    output_file = OUTPUT
    output_words = "Slurm's output of its batch job"

    def __init__(self, workdir: str, options: Optional[dict] = None):
        super().__init__(workdir, options)
        self.submitted: Dict[str, str] = {}  # jobs submitted by this launch, by name

    def earlier_requeues(self, job_dir: str) -> int:
        return earlier_requeues(job_dir)

    def requeue_counts(self, env) -> Tuple[int, int]:
        return restarts(env), requeues(env)

    def own_handle(self, env) -> str:
        return str(env.get("SLURM_JOB_ID", ""))

    def requeue(self, handle: str) -> None:
        proc = self._run("scontrol", "requeue", handle)
        if proc.returncode != 0:
            raise BackendError(proc.stderr.strip()[:200] or f"scontrol requeue exit {proc.returncode}")

    def _run(self, *argv: str, timeout: float = 60, env: Optional[dict] = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env)
        except FileNotFoundError:
            raise BackendError(f"{argv[0]} not found on this host (is it a Slurm login node?)") from None
        except subprocess.TimeoutExpired:
            raise Unanswered(f"{argv[0]} did not answer in {timeout:.0f} s (is slurmctld up?)") from None

    def submit(self, job: dict, handles: Dict[str, str]) -> str:
        job_dir = job["job_dir"]
        script = os.path.join(job_dir, SCRIPT)
        with open(script, "w") as fh:
            fh.write(batch_script(job, [str(m) for m in self.options.get("modules") or []]))
        os.chmod(script, 0o755)
        warn = int(self.options.get("warn_before") or 120)
        argv = [
            "sbatch",
            "--parsable",
            f"--job-name={job_name(job)}",
            f"--output={os.path.join(job_dir, OUTPUT)}",
            "--open-mode=append",
            f"--chdir={job_dir}",
            "--requeue",
            f"--signal=B:USR1@{warn}",
            "--kill-on-invalid-dep=yes",
        ]
        # On jobs of this same submission, and on jobs submitted before (a resume, another
        # run's shared pretrain job) that Slurm still holds: a required job that is done
        # already needs no wait (and Slurm may have forgotten its id); the wrapper checks it
        # is done anyway.  requires: must end done (afterok); after: must end, however (afterany).
        deps = [
            f"{kind}:" + ":".join(ids)
            for kind, key in (("afterok", "requires"), ("afterany", "after"))
            for ids in [[i for i in (self._dependency(job_dir, n) for n in job.get(key) or []) if i]]
            if ids
        ]
        if deps:
            argv.append("--dependency=" + ",".join(deps))
        argv += [str(a) for a in self.options.get("sbatch") or []]  # the host's `slurm:` options
        argv.append(script)
        proc = self._run(*argv)
        if proc.returncode != 0:
            said = (proc.stderr.strip().splitlines() or ["no message"])[-1].replace("sbatch: error: ", "")
            if any(words in proc.stderr for words in UNANSWERED):
                # Not the job's fault: nothing is recorded, and a --resume submits it later.
                raise Unanswered(f"sbatch: {said}")
            user = " ".join(str(a) for a in self.options.get("sbatch") or [])
            raise Refused(f"sbatch refused it: {said}" + (f" (the host's slurm: options: {user})" if user else ""))
        job_id = proc.stdout.strip().split(";")[0]  # --parsable: "ID" or "ID;CLUSTER"
        if not job_id.isdigit():
            raise BackendError(f"sbatch printed no job id: {proc.stdout.strip()[:200]!r}")
        self.submitted[job["name"]] = job_id
        return job_id

    def _dependency(self, job_dir: str, name: str) -> str:
        """The Slurm job id to wait for before the job that depends on NAME: the one this
        launch submitted, else the one recorded in NAME's folder while Slurm still holds it
        ("" for none: ended, or never a Slurm job)."""
        if name in self.submitted:
            return self.submitted[name]
        doc = read_dict(os.path.join(dependency_dir(job_dir, name), "backend.json"))
        handle = str(doc.get("handle") or "") if doc.get("backend") == self.name else ""
        if not handle.isdigit():
            return ""
        try:
            row = self._squeue([handle]).get(handle)
        except BackendError:
            return ""  # the wrapper still waits for it
        return handle if row and row["state"] in LIVE else ""

    def alive(self, handles: Dict[str, str]) -> Dict[str, dict]:
        ids = sorted({h for h in handles.values() if h.isdigit()}, key=int)
        try:
            known = self._squeue(ids) if ids else {}
        except BackendError as exc:
            # slurmctld down or slow: the job folders still say what the jobs did, and the jobs
            # keep running without it.  Nothing is taken for ended (or recorded) on no answer.
            return {
                name: {"alive": True, "job_id": handle, "unreachable": f"Slurm could not be asked: {exc}"}
                for name, handle in handles.items()
            }
        missing = [i for i in ids if i not in known]
        if missing:
            known.update(self._sacct(missing))  # a cluster with accounting remembers longer
        out = {}
        for name, handle in handles.items():
            row = known.get(handle)
            if row is None:
                out[name] = {"alive": False, "job_id": handle}
                continue
            state, reason = row["state"], row["reason"]
            info = {
                "alive": state in LIVE,
                "job_id": handle,
                "state": state,
                "reason": reason,
                "node": row.get("node", ""),
                "partition": row.get("partition", ""),
            }
            if state == "PENDING":
                info["queued"] = True  # never started (or requeued): no wrapper to wait for
            if state in ENDED:
                if state == "CANCELLED" and reason == "DependencyNeverSatisfied":
                    info["ended"] = {
                        "state": "failed",
                        "reason": "a job it requires did not end done (Slurm: DependencyNeverSatisfied)",
                    }
                else:
                    why = WHY_FAILED.get(reason, "") if state == "FAILED" else ""
                    why = why or WHY.get(state, state)
                    info["ended"] = {
                        "state": ENDED[state],
                        "reason": f"{why} (Slurm: {state}" + (f", {reason})" if reason and reason != "None" else ")"),
                    }
                if row.get("end") is not None:
                    info["ended"]["at"] = row["end"]  # when it ended, not when orch asked
            out[name] = info
        return out

    def ended_by_files(self, job_dir: str, handle: str, since: float) -> Optional[dict]:
        return notice_end(job_dir, handle, since) if handle.isdigit() else None

    def _squeue(self, ids: List[str]) -> Dict[str, dict]:
        proc = self._run(
            "squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", SQUEUE_FORMAT, env={**os.environ, **TIME_FORMAT}
        )
        if proc.returncode != 0:
            # squeue fails outright when every id has been purged ("Invalid job id specified").
            if "Invalid job id" in proc.stderr:
                return {}
            raise BackendError("squeue failed: " + (proc.stderr.strip().splitlines() or ["no message"])[-1])
        return _rows(proc.stdout)

    def _sacct(self, ids: List[str]) -> Dict[str, dict]:
        """Slurm's accounting, where the cluster keeps it (it is not required: rc != 0 -> {})."""
        try:
            proc = subprocess.run(
                ["sacct", "-n", "-P", "-X", "-j", ",".join(ids), "-o", SACCT_FIELDS],
                capture_output=True,
                text=True,
                timeout=30,
                env={**os.environ, **TIME_FORMAT},
            )
        except (OSError, subprocess.TimeoutExpired):
            return {}
        return _rows(proc.stdout) if proc.returncode == 0 else {}

    def stop(self, handle: str) -> None:
        if handle.isdigit():
            self._run("scancel", handle)

    def describe(self, handle: str) -> str:
        return f"Slurm job {handle} (scontrol show job {handle})"

    def required_tools(self) -> List[str]:
        return ["sbatch", "squeue", "scontrol", "scancel"]
