"""The `slurm:` block of a host config: sbatch options for a `scheduler: slurm` host.

partition, account, time, gres, cpus_per_task, mem, qos and constraint map to the sbatch
option of the same name (``cpus_per_task`` -> ``--cpus-per-task``), gpus_per_job to ``--gpus``,
extra_args are passed as they are; modules, warn_before and max_requeues are orch's own.
The options travel to the host as separate argv items of one sbatch call (never through a
shell), and each value is still checked here against what Slurm accepts for it: a value
that is not one plain word would at best make every submission fail on the cluster, at
worst be read as another option.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional

from orchestrator.config.project import control_char
from orchestrator.errors import ExitCode, OrchError

# What each option may hold (Slurm's own syntax, a little narrower).
_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")  # partition, account, qos names
_WORDS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*(,[A-Za-z0-9_][A-Za-z0-9_.+-]*)*")  # a list of partitions
_CONSTRAINT = re.compile(r"[A-Za-z0-9_\[][A-Za-z0-9_.+&|*!()\[\]:,-]*")  # features: a100&ib, [rack1|rack2]
_GRES = re.compile(r"[A-Za-z0-9_]+(:[A-Za-z0-9_.-]+){0,2}(,[A-Za-z0-9_]+(:[A-Za-z0-9_.-]+){0,2})*")  # gpu:a100:1
_MEM = re.compile(r"[0-9]+([KMGTkmgt][Bb]?)?")  # sbatch's own: MB by default, K M G T (any case), then B or not
# minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.  Its first number has at most 9 digits
# (1900 years of minutes): sinfo's %l/%L come from the host, and int() refuses a number of
# over 4300 digits with a ValueError, so a longer one is no time at all, not a traceback.
_TIME_DIGITS = 9
_TIME = re.compile(
    rf"[0-9]{{1,{_TIME_DIGITS}}}(:[0-9]{{1,2}}){{0,2}}|[0-9]{{1,{_TIME_DIGITS}}}-[0-9]{{1,2}}(:[0-9]{{1,2}}){{0,2}}"
)
_MODULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+/@-]*")
# Options orch sets itself on every job (docs/CONTRACT.md, "Slurm"): extra_args may not move them.
RESERVED = (
    "--job-name",
    "-J",
    "--output",
    "-o",
    "--error",
    "-e",
    "--chdir",
    "-D",
    "--dependency",
    "-d",
    "--parsable",
    "--wrap",
    "--signal",
    "--open-mode",
    "--requeue",
    "--no-requeue",
    "--array",
    "-a",
    "--kill-on-invalid-dep",
    "--export",
    "--test-only",
    "--hold",
    "-H",
)


@dataclass
class SlurmOptions:
    partition: str = ""
    account: str = ""
    time: str = ""  # per job; one that reaches it is checkpointed and requeued
    gres: str = ""  # e.g. gpu:1 or gpu:a100:1
    gpus_per_job: int = 0  # --gpus=N (instead of gres)
    cpus_per_task: int = 0
    mem: str = ""
    qos: str = ""
    constraint: str = ""
    extra_args: List[str] = field(default_factory=list)  # other sbatch flags, one argv item each
    modules: List[str] = field(default_factory=list)  # `module load` in the job before python starts
    warn_before: int = 120  # seconds before the time limit when the job checkpoints and requeues itself
    max_requeues: int = 5  # a job that keeps reaching its limit is failed after this many requeues

    def sbatch_args(self) -> List[str]:
        """The user's options as sbatch argv items (`--key=value`, one item each)."""
        args = [
            f"--{key.replace('_', '-')}={getattr(self, key)}"
            for key in ("partition", "account", "time", "gres", "qos", "constraint", "mem")
            if getattr(self, key)
        ]
        if self.gpus_per_job:
            args.append(f"--gpus={self.gpus_per_job}")
        if self.cpus_per_task:
            args.append(f"--cpus-per-task={self.cpus_per_task}")
        return args + list(self.extra_args)


_PATTERNS = {
    "partition": (_WORDS, "a partition name (or several, comma-separated), e.g. gpu"),
    "account": (_WORD, "an account name, e.g. def-vincent"),
    "qos": (_WORD, "a QOS name, e.g. normal"),
    "constraint": (_CONSTRAINT, "node features, e.g. a100 or a100&ib"),
    "gres": (_GRES, "a generic resource, e.g. gpu:1 or gpu:a100:1"),
    "mem": (_MEM, "memory per node: megabytes, or a number with K, M, G or T (e.g. 32G, 32GB or 32000)"),
    "time": (_TIME, 'a time limit: minutes, HH:MM:SS or D-HH:MM:SS, e.g. "02:00:00"'),
}


def seconds(text: str) -> Optional[int]:
    """A Slurm time (sbatch --time, sinfo's %l) in seconds: minutes, MM:SS, HH:MM:SS, D-HH,
    D-HH:MM, D-HH:MM:SS.  None for none ("infinite", "UNLIMITED", "n/a", "") and for anything
    else _TIME does not take (a number of more than 9 digits: never an exception)."""
    text = text.strip()
    if not _TIME.fullmatch(text):
        return None
    days, dash, rest = text.rpartition("-")
    parts = [int(x) for x in rest.split(":")]
    if dash:  # D-HH, D-HH:MM, D-HH:MM:SS
        parts += [0] * (3 - len(parts))
        return int(days) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]
    if len(parts) == 1:  # minutes
        return parts[0] * 60
    if len(parts) == 2:  # MM:SS
        return parts[0] * 60 + parts[1]
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def words(secs: int) -> str:
    """SECS as a person reads a time limit: 90 s, 45 min, 2 h 30 min."""
    if secs < 120:
        return f"{secs} s"
    if secs < 7200:
        return f"{secs // 60} min" + (f" {secs % 60} s" if secs % 60 else "")
    return f"{secs // 3600} h" + (f" {secs % 3600 // 60} min" if secs % 3600 // 60 else "")


# Below this much working time per attempt (slurm.time - slurm.warn_before), start-up (python,
# torch, data, the checkpoint) takes much of each attempt: said, not refused.
SHORT_ATTEMPT_S = 600


def time_warnings(opts: SlurmOptions) -> List[str]:
    """What is legal but likely not meant in slurm.time / warn_before (the first is an error
    in check())."""
    limit = seconds(opts.time) if opts.time else None
    said = short_attempt(opts, f"slurm.time {opts.time!r} ({words(limit)})", limit) if limit is not None else ""
    return [said] if said else []


def short_attempt(opts: SlurmOptions, what: str, limit: int) -> str:
    """The warning that the time limit WHAT (LIMIT s: slurm.time, or a partition's default)
    leaves each attempt little work before slurm.warn_before, or "" when it leaves enough
    (one that leaves none is an error: warn_before_too_late)."""
    if limit - opts.warn_before >= SHORT_ATTEMPT_S:
        return ""
    return (
        f"{what} leaves each attempt {words(limit - opts.warn_before)} before "
        f"Slurm's warning (slurm.warn_before {opts.warn_before} s) makes it checkpoint and requeue: start-up "
        "takes much of that, and a run may need many requeues (slurm.max_requeues "
        f"{opts.max_requeues}); give slurm.time more if the partition allows"
    )


def warn_before_too_late(opts: SlurmOptions, what: str) -> str:
    """Why slurm.warn_before at or over the time limit WHAT is refused."""
    return (
        f"is not less than {what}: Slurm would warn each job at once, "
        "so it would checkpoint and requeue itself without getting any work done"
    )


def _shown(value) -> str:
    """VALUE quoted for a message, its start only when it is long (a pasted megabyte, a
    5000-digit number): the message stays a few lines."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(str(value))} characters)"


def check(opts: SlurmOptions, where: str) -> None:
    """One clear message for the first value Slurm would not read as intended."""

    def bad(key: str, value, why: str, hint: str) -> OrchError:
        return OrchError(f"{where}: key 'slurm.{key}': {why}: {_shown(value)}", ExitCode.CONFIG, hint=hint)

    if re.search(f"[0-9]{{{_TIME_DIGITS + 1}}}", opts.time):
        raise bad(
            "time",
            opts.time,
            f"a number in it has more than {_TIME_DIGITS} digits",
            'write slurm.time as minutes, HH:MM:SS or D-HH:MM:SS, e.g. "7-00:00:00" (a week), or leave it out',
        )
    for key, (pattern, what) in _PATTERNS.items():
        value = getattr(opts, key)
        if value and not pattern.fullmatch(value):
            raise bad(key, value, f"expected {what}", f"write slurm.{key} as {what}, or leave it out")
    for key, low in (("gpus_per_job", 0), ("cpus_per_task", 0), ("max_requeues", 0), ("warn_before", 10)):
        if getattr(opts, key) < low:
            raise bad(key, getattr(opts, key), f"must be at least {low}", f"give slurm.{key} an integer >= {low}")
    limit = seconds(opts.time) if opts.time else None
    if limit is not None and opts.warn_before >= limit:
        raise bad(
            "warn_before",
            opts.warn_before,
            warn_before_too_late(opts, f"slurm.time {opts.time!r} ({words(limit)})"),
            f'give slurm.time well over {opts.warn_before} s (a bare number is minutes: time: "60" is an hour), '
            "or a smaller slurm.warn_before",
        )
    if opts.gres and opts.gpus_per_job:
        raise bad(
            "gpus_per_job",
            opts.gpus_per_job,
            "set together with slurm.gres",
            "ask for GPUs one way: `gres: gpu:1` or `gpus_per_job: 1`",
        )
    for i, arg in enumerate(opts.extra_args):
        at = f"extra_args[{i}]"
        if control_char(arg):
            raise bad(
                at,
                arg,
                f"contains a control character ({control_char(arg)})",
                "each item is one sbatch argument on one line",
            )
        if not arg.startswith("-"):
            raise bad(
                at,
                arg,
                "not an option (each item is one sbatch flag, e.g. --mail-type=END)",
                "write `--flag=value` as one item; a separate value item would be read as the job script",
            )
        name = arg.split("=", 1)[0]
        # sbatch takes -ofile for -o file, and any unambiguous prefix of a long option (--dep=).
        if any((len(r) == 2 and arg.startswith(r)) or (name.startswith("--") and r.startswith(name)) for r in RESERVED):
            raise bad(at, arg, f"orch sets {name} itself on every job", "leave it out of extra_args")
    for i, module in enumerate(opts.modules):
        if not _MODULE.fullmatch(module):
            raise bad(
                f"modules[{i}]",
                module,
                "expected a module name, e.g. cuda/12.4",
                "one module per item: letters, digits and _ . + / @ -",
            )
