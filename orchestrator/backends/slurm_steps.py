"""Bootstrap's long steps on a Slurm host: what needs a GPU runs as a batch job, the rest on the login node.

Which step runs where (a cluster's compute nodes often have no internet, its login node no GPU
and a CPU-time limit):

- ``verify`` (torch on the GPU, bf16 matmul, flash-attn vs SDPA) and a flash-attn *source
  build* (an hour of nvcc on every core) run as Slurm batch jobs with the host's ``slurm:``
  options (partition, account, time, gres, ...), so they see the compute nodes' GPUs and do
  not load the login node.  The build downloads nothing: the step before it,
  ``flash-attn-fetch`` on the login node, installed the build tools (and conda's nvcc) into
  the env and fetched flash-attn's sdist into ``bootstrap/wheelhouse`` on the shared
  filesystem, and the job installs from there with ``--no-index`` (compute nodes often
  have no internet).
- Everything else (Miniconda, the env, torch, pip packages, a prebuilt flash-attn wheel)
  downloads, and runs on the login node as on any host: detached in tmux (TmuxSteps), or
  attached when the plan says the step is short.  It installs into the workdir, which is on
  the shared filesystem the compute nodes see.

A batch step is ``sbatch --job-name=orch-bootstrap-STEP --chdir=<workdir>/bootstrap
--output=<logs>/STEP.slurm.out --no-requeue <slurm: options> <logs>/STEP.sbatch.sh``; the script
loads the host's ``slurm.modules`` and ``exec``s run_step.sh with the step's argv (each value
quoted), so `scancel` reaches run_step.sh, which records the end (rc 143).  Its job id is kept
in ``<logs>/STEP.jobid``.  Following it is the same one-round-trip poll as in tmux (the clock,
`started`, `result`, the log from an offset, the bootstrap lock refreshed), with "alive" meaning
that squeue still shows the job queued or running.  A re-run of `orch bootstrap` finds a live
step by its job name and working directory (the probe's `squeue -o '%j|%Z'`) and reattaches.
"""

from __future__ import annotations

import posixpath
from typing import Dict, List, Optional, Tuple

from orchestrator.backends.tmux_steps import POLL_END, TmuxSteps, parse_poll
from orchestrator.config.slurm import SlurmOptions
from orchestrator.contract.bootsteps import Layout, Step
from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport import shell
from remote.backends.slurm import LIVE, batch_script

# Static shell programs; their inputs arrive as positional arguments ("$1"...), quoted by shell.join.
_LAUNCH = r"""
script="$1"; text="$2"; jobid="$3"; started="$4"; result="$5"; shift 5
mkdir -p "$(dirname "$script")" || exit 1
tmp="$script.tmp.$$"
printf '%s' "$text" > "$tmp" && chmod 755 "$tmp" && mv -f "$tmp" "$script" || exit 1
rm -f "$started" "$result" "$jobid"
out=$(sbatch "$@" "$script") || exit 1
id="${out%%;*}"
case "$id" in ''|*[!0-9]*) echo "sbatch printed no job id: $out" >&2; exit 1 ;; esac
printf '%s\n' "$id" > "$jobid"
printf '@@job %s\n' "$id"
"""
_POLL = (
    r"""
log="$1"; off="$2"; res="$3"; jobid="$4"; started="$5"; LOCK="${6:-}"; LOCK_TOKEN="${7:-}"
printf '@@now %s\n' "$(date +%s)"
printf '@@started %s\n' "$(head -c 400 "$started" 2>/dev/null | tr -d '\n')"
id=$(head -c 40 "$jobid" 2>/dev/null | tr -dc '0-9')
alive=0; q="no job id"
if [ -n "$id" ]; then
  q=$(squeue -h -t all -j "$id" -o '%T|%r' 2>&1); qrc=$?
  q=$(printf '%s\n' "$q" | head -n 1)
  state="${q%%|*}"
  case " @@LIVE@@ " in *" $state "*) [ -n "$state" ] && alive=1 ;; esac
  # squeue itself failing (slurmctld busy) is not the job's end; a forgotten id is.
  if [ "$qrc" != 0 ] && ! printf '%s' "$q" | grep -q 'Invalid job id'; then alive=1; fi
fi
echo "@@alive $alive"
printf '@@queue %s %s\n' "$id" "$(printf '%s' "$q" | tr -d '\n' | head -c 200)"
"""
    + POLL_END
)
# The step's log; when the job ended before run_step.sh wrote one (a module that would not
# load, a bad node), the batch job's own output says why.
_TAIL = r"""
if [ -s "$1" ]; then tail -c 200000 "$1"; else tail -c 20000 "$2" 2>/dev/null; fi; exit 0
"""


def runs_as_job(step: Step) -> bool:
    """Whether a step runs as a Slurm batch job (see the module's docstring for why)."""
    return step.name == "verify" or (step.name == "flash-attn" and "--source" in step.argv)


def queue_words(job_id: str, said: str) -> str:
    """'Slurm job 12: PENDING (Resources)' from squeue's `STATE|REASON` (host text: printable only)."""
    state, _, reason = "".join(c for c in said if c.isprintable())[:200].partition("|")
    words = f"Slurm job {job_id}: {state.strip() or 'not in the queue'}"
    return words + (f" ({reason.strip()})" if reason.strip() and reason.strip() != "None" else "")


class SlurmSteps:
    """Bootstrap's steps on a `scheduler: slurm` host (same interface as TmuxSteps)."""

    def __init__(self, transport, layout: Layout, options: Optional[SlurmOptions] = None):
        self.t = transport
        self.layout = layout
        self.options = options or SlurmOptions()
        self.login = TmuxSteps(transport, layout)  # the steps that stay on the login node
        self.job_ids: Dict[str, str] = {}  # submitted by this controller, by step

    def must_detach(self, step: Step) -> bool:
        """A step the plan would run attached that must still be a job (verify)."""
        return runs_as_job(step)

    # --- where a step's files are -------------------------------------------------------

    def job_name(self, step: Step) -> str:
        return self.layout.session(step.name)  # orch-bootstrap-STEP, as the tmux session would be

    def _file(self, step: Step, suffix: str) -> str:
        return posixpath.join(self.layout.logs, f"{step.name}.{suffix}")

    def output(self, step: Step) -> str:
        """The batch job's own output (module loads, Slurm's messages); the step logs to its .log."""
        return self._file(step, "slurm.out")

    def jobid_file(self, step: Step) -> str:
        return self._file(step, "jobid")

    def script(self, step: Step) -> str:
        return self._file(step, "sbatch.sh")

    # --- the interface the step runner uses ----------------------------------------------

    def describe(self, step: Step, socket: bool = False) -> str:
        if not runs_as_job(step):
            return self.login.describe(step, socket)
        # Its batch output is named even briefly: when the job ends before run_step.sh (a module
        # that does not load), that file is the one that says why.
        job_id = self.job_ids.get(step.name)
        return (
            f"Slurm job {self.job_name(step)} (" + (f"id {job_id}, " if job_id else "") + f"output {self.output(step)})"
        )

    def stop_hint(self, step: Step) -> str:
        if not runs_as_job(step):
            return self.login.stop_hint(step)
        return f"scancel $(cat {shell.quote(self.jobid_file(step))})"

    def path_file(self, step: Step) -> str:
        # A batch job gets the login shell's environment from sbatch (PATH included), and its
        # modules add to it: run_step.sh must not put the login PATH back over them.
        return "" if runs_as_job(step) else self.login.path_file(step)

    def sbatch_args(self, step: Step) -> List[str]:
        """sbatch's options for STEP, one argv item each (the host's `slurm:` options last)."""
        return [
            "--parsable",
            f"--job-name={self.job_name(step)}",
            f"--output={self.output(step)}",
            "--open-mode=append",
            f"--chdir={self.layout.root}",
            "--no-requeue",  # a failed build is reported, not run again by Slurm
            *self.options.sbatch_args(),
        ]

    def batch_script(self, step: Step, argv: List[str]) -> str:
        """Load the host's modules, then become run_step.sh (`exec`: scancel's TERM reaches it)."""
        return batch_script(
            {"run_id": "bootstrap", "name": step.name, "command": "exec " + shell.join(argv)},
            list(self.options.modules),
        )

    def launch(self, step: Step, argv: List[str], host: str) -> None:
        """Submit argv (run_step.sh ...) as a batch job; return once Slurm has its id (it may
        wait in the queue: the poll says so), else raise with sbatch's own message."""
        if not runs_as_job(step):
            return self.login.launch(step, argv, host)
        cmd = [
            "bash",
            "-c",
            _LAUNCH,
            "orch-sbatch",
            self.script(step),
            self.batch_script(step, argv),
            self.jobid_file(step),
            self.layout.started(step.name),
            self.layout.result(step.name),
            *self.sbatch_args(step),
        ]
        res = self.t.run(shell.join(cmd), check=False, timeout=120)
        job_id = next((line[6:].strip() for line in res.stdout.splitlines() if line.startswith("@@job ")), "")
        if res.rc != 0 or not job_id:
            said = (res.stderr or res.stdout).strip().replace("sbatch: error: ", "")[-400:]
            raise OrchError(
                f"could not submit step {step.name} to Slurm on {host}: {said or 'no message'}",
                ExitCode.REMOTE,
                hint="check the host's `slurm:` options (partition, account, gres, time) with `orch hosts check`",
            )
        self.job_ids[step.name] = job_id

    def poll(self, step: Step, offset: int, lock) -> Tuple[dict, str]:
        """As TmuxSteps.poll, plus ``queue``: what squeue says of the job, in words ("Slurm job
        12: PENDING (Resources)"; the Runner shows it when it changes)."""
        if not runs_as_job(step):
            return self.login.poll(step, offset, lock)
        script = _POLL.replace("@@LOCK_SNIPPET@@", lock.POLL_SNIPPET).replace("@@LIVE@@", " ".join(sorted(LIVE)))
        argv = [
            "bash",
            "-c",
            script,
            "orch-poll",
            self.layout.log(step.name),
            str(offset),
            self.layout.result(step.name),
            self.jobid_file(step),
            self.layout.started(step.name),
            *lock.poll_args(),
        ]
        text = self.t.run(shell.join(argv), check=False, timeout=60).stdout
        info, chunk = parse_poll(text)
        for line in text.partition("@@chunk ")[0].splitlines():
            if line.startswith("@@queue "):
                job_id, _, said = line[8:].strip().partition(" ")
                if job_id.isdigit():
                    self.job_ids[step.name] = job_id
                    info["queue"] = queue_words(job_id, said)
        return info, chunk

    def log_tail(self, step: Step) -> str:
        if not runs_as_job(step):
            return self.login.log_tail(step)
        argv = ["bash", "-c", _TAIL, "orch-tail", self.layout.log(step.name), self.output(step)]
        return self.t.run(shell.join(argv), check=False, timeout=60).stdout
