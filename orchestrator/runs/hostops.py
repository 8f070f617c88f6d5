"""Operations on a host's run folders, each one SSH round trip through remote.hostctl."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from orchestrator.backends.base import JobBackend
from orchestrator.config.project import control_char
from orchestrator.contract import hostdocs
from orchestrator.errors import ExitCode, OrchError
from orchestrator.terminal import last_lines, visible
from orchestrator.transport import diskspace, shell
from orchestrator.transport.base import Transport

# A constant script: values arrive as positional parameters, never spliced into the text.
# It prints NUL-terminated key=value records: a value (the workdir is the host's) may hold
# any byte but NUL, so a newline in a path cannot start a record of its own.
_PREPARE = r"""
wd="$1"; py="$2"; shift 2  # then: the tools to look for (HOST_TOOLS, the job backend's)
rec() { printf '%s=%s\0' "$1" "$2"; }
mkdir -p -- "$wd" && cd -- "$wd" || { rec error "cannot create workdir $wd"; exit 0; }
rec workdir "$PWD"
for t in "$@"; do
  if command -v "$t" >/dev/null 2>&1; then rec "$t" yes; else rec "$t" no; fi
done
if command -v "$py" >/dev/null 2>&1 || [ -x "$py" ]; then
  rec python yes
  # Which of the payload's packages the interpreter can import (find_spec: nothing is
  # imported, so this costs the interpreter's start-up, not torch's).
  "$py" -c 'import importlib.util as u, sys
for m in ("torch", "transformers", "tokenizers", "datasets"):
    sys.stdout.write("module_%s=%s\0" % (m, "yes" if u.find_spec(m) else "no"))' 2>/dev/null
else
  rec python no
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | while IFS= read -r i; do rec gpu "$i"; done
fi
"""


def parse_prepare(out: str) -> Tuple[Dict[str, str], List[str]]:
    # -> (facts, GPU indices); records without '=' (noise from a login script) are ignored.
    facts: Dict[str, str] = {}
    gpus: List[str] = []
    for record in out.split("\0"):
        key, eq, value = record.partition("=")
        if not eq:
            continue
        key = key.rsplit("\n", 1)[-1].strip()  # a login script's chatter may precede the first record
        if key == "gpu":
            gpus.append(value.strip())
        elif key:
            facts.setdefault(key, value)
    return facts, gpus


# What orch itself uses on any host, whatever runs its jobs: rsync copies (SFTP without it),
# nvidia-smi lists the GPUs.  The tools jobs run with are the job backend's (JobBackend.tools:
# tmux, or Slurm's commands), looked for only on a host that uses it.
HOST_TOOLS = ("rsync", "nvidia-smi")


def tools_to_find(backend: Optional[JobBackend]) -> List[str]:
    """The tools prepare looks for on a host whose jobs BACKEND runs (None: no jobs)."""
    return [*HOST_TOOLS, *(t for t in (backend.tools if backend else ()) if t not in HOST_TOOLS)]


@dataclass
class HostState:
    workdir: str  # absolute
    tools: Dict[str, bool]
    gpus: List[str]
    modules: Dict[str, bool] = field(default_factory=dict)  # importable by the host's python

    def missing_modules(self, wanted: List[str]) -> List[str]:
        """Those of ``wanted`` the probe found missing (unknown counts as present)."""
        return [m for m in wanted if self.modules.get(m) is False]


def prepare(transport: Transport, backend: Optional[JobBackend] = None) -> HostState:
    """Create the workdir, resolve it to an absolute path, and check the tools orch needs
    (the python, and what the job backend runs jobs with; None: no jobs, no backend)."""
    host = transport.host
    out = transport.run(
        shell.join(["sh", "-c", _PREPARE, "sh", transport.workdir, host.python_or_default, *tools_to_find(backend)])
    ).stdout
    facts, gpus = parse_prepare(out)
    return state_from_facts(host, facts, gpus, backend)


def state_from_facts(host, facts: Dict[str, str], gpus: List[str], backend: Optional[JobBackend] = None) -> HostState:
    """The host as prepare's records describe it (also what the check-and-launch program
    prints); a workdir orch cannot use or a missing tool is one clear error."""
    if "error" in facts:
        raise OrchError(f"{host.name}: {facts['error']!r}", ExitCode.REMOTE, hint="check `workdir` in the host config")
    workdir = facts.get("workdir", "")
    if not workdir.startswith("/") or control_char(workdir):
        # A relative workdir is under the login's home: a home with a newline in it would
        # put code and runs where no later command looks.
        raise OrchError(
            f"{host.name}: the workdir resolves to {workdir!r} on the host, which orch cannot use "
            "(not an absolute path, or it contains a control character)",
            ExitCode.CONFIG,
            hint="set `workdir` in the host config to a plain absolute path",
        )
    tools = {t: facts.get(t) == "yes" for t in (*tools_to_find(backend), "python")}
    missing = [t for t in (backend.tools if backend else ()) if facts.get(t) != "yes"]
    if missing:
        raise OrchError(
            f"{host.name} has no {', '.join(missing)}, which orch's {backend.name} backend runs jobs with "
            "(they must keep running without the SSH connection)",
            ExitCode.HOST_TOOLS,
            hint=backend.install_hint,
        )
    if not tools["python"]:
        raise OrchError(
            f"{host.name} has no python interpreter {host.python_or_default!r}",
            ExitCode.HOST_TOOLS,
            hint="run `orch bootstrap " + host.name + "` or set `python:` in the host config",
        )
    if host.gpus:
        gpus = list(host.gpus)
    modules = {k[len("module_") :]: v == "yes" for k, v in facts.items() if k.startswith("module_")}
    return HostState(workdir=workdir, tools=tools, gpus=gpus, modules=modules)


# The exit status and stderr line of a host helper command whose code snapshot is not on the
# host (its workdir cleaned or deleted, or a launch interrupted before publishing it): told
# apart from the helper's own failures, so the user gets what happened instead of `cd: ...`.
NO_SNAPSHOT_RC = 66
NO_SNAPSHOT_MARK = "orch-no-snapshot"
# `hostctl follow --no-follow`'s stderr line for a job shown by its scheduler's output, and
# its exit statuses for a run folder that is gone and for no log at all (remote/hostctl.py).
TAIL_OUTPUT_MARK, TAIL_NO_RUN_RC, TAIL_NO_LOG_RC = "orch-output-file", 3, 1
# A host helper's stderr mark (exit 2): the job scheduler did not answer (Slurm's controller
# down or busy), so nothing was changed (remote/hostctl.py UNANSWERED_MARK).
UNANSWERED_MARK = "orch-unanswered"


class SchedulerUnanswered(OrchError):
    """A host helper command the job scheduler did not answer; ``said``: its words."""

    def __init__(self, message: str, said: str):
        super().__init__(message, ExitCode.REMOTE, hint="try again once it answers")
        self.said = said


def hostctl(python: str, code_dir: str, *args: str) -> str:
    """Shell text to run the stdlib host helper (remote/hostctl.py) from a code snapshot.

    -S: it needs no site-packages, and skipping them saves start-up on every status call.
    An if, not `exit`: status chains several of these in one shell (_each_reply).
    """
    q = shell.quote(code_dir)
    return (
        f"if cd {q} 2>/dev/null; then {shell.join([python, '-S', '-m', 'remote.hostctl', *args])}; "
        f"else printf '%s %s\\n' {NO_SNAPSHOT_MARK} {q} >&2; (exit {NO_SNAPSHOT_RC}); fi"
    )


def helper_failed(host: str, rc: object, text: str) -> OrchError:
    """The error of a host helper command that exited RC with output TEXT."""
    if str(rc) == str(NO_SNAPSHOT_RC) and NO_SNAPSHOT_MARK in text:
        rest = text.split(NO_SNAPSHOT_MARK, 1)[1].strip()
        where = visible(rest.splitlines()[0][:300]) if rest else "?"
        return OrchError(
            f"the run's code snapshot is not on {host} ({where}): the workdir there was cleaned or deleted, "
            "or the run's launch was interrupted before its code was sent",
            ExitCode.RUN_STATE,
            hint="`orch run EXPERIMENT --resume RUN` sends the code again while the code here is the run's; "
            "a run whose workdir is gone needs a new run",
        )
    if UNANSWERED_MARK in text:
        said = visible(text.split(UNANSWERED_MARK, 1)[1].strip().splitlines()[0][:300])
        return SchedulerUnanswered(f"the job scheduler did not answer on {host}: {said}", said)
    tail = " | ".join(last_lines(text, 3))
    return OrchError(f"host helper failed on {host} (exit {rc}): {tail}", ExitCode.REMOTE)


def code_dir(workdir: str, code_hash: str) -> str:
    return f"{workdir}/code/{code_hash}"


def run_dir(workdir: str, run_id: str) -> str:
    return f"{workdir}/runs/{run_id}"


STATUS_TIMEOUT_S = 120  # one status round trip reads a few files per job: a host helper that hangs is broken
CHANGE_TIMEOUT_S = 900  # launch and cancel start / stop tmux sessions, up to 15 s for each job's wrapper


def _json(
    transport: Transport, command: str, check, stdin: Optional[str] = None, timeout: float = CHANGE_TIMEOUT_S
) -> Dict:
    """Run a host helper command and return its reply, checked by ``check`` (hostdocs):
    what the host prints is untrusted, so a reply that is too big, not JSON or not of the
    contract's shape is one message, never a traceback."""
    host = transport.host.name
    text = reply_text(transport, command, stdin, timeout)
    try:
        doc = hostdocs.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError, RecursionError):
        raise OrchError(f"host helper on {host} printed no JSON: {text[-300:]!r}", ExitCode.REMOTE) from None
    try:
        return check(doc)
    except hostdocs.BadDocument as exc:
        raise OrchError(f"host helper on {host} sent a reply orch cannot use: {exc}", ExitCode.REMOTE) from None


def reply_text(
    transport: Transport, command: str, stdin: Optional[str] = None, timeout: float = CHANGE_TIMEOUT_S
) -> str:
    """What a host helper command printed, once it succeeded (bounded: untrusted)."""
    host = transport.host.name
    res = transport.run(command, check=False, stdin=stdin, max_output=hostdocs.MAX_REPLY_BYTES, timeout=timeout)
    if res.overflow:
        raise OrchError(
            f"host helper on {host} printed more than {hostdocs.MAX_REPLY_BYTES >> 20} MB: not a reply orch reads",
            ExitCode.REMOTE,
            hint="the host's code snapshot or python is not what orch sent; check <workdir>/code there",
        )
    if res.rc != 0:
        if diskspace.says_no_space(res.stderr):
            raise diskspace.host_no_space(transport, res.stderr)
        raise helper_failed(host, res.rc, res.stderr or res.stdout)
    return res.stdout


def remote_status(transport: Transport, workdir: str, code_hash: str, run_id: str, backend: JobBackend) -> Dict:
    cmd = _hostctl(
        transport, workdir, code_hash, "status", "--run-dir", run_dir(workdir, run_id), *backend.hostctl_args()
    )
    return _json(transport, cmd, hostdocs.check_status_reply, timeout=STATUS_TIMEOUT_S)


def remote_status_many(transport: Transport, runs: List[Tuple[str, str, str, JobBackend]]) -> Dict[str, object]:
    """`remote_status` of many runs of one host in one SSH round trip (a study's).
    ``runs``: (workdir, code_hash, run_id, backend).  Returns run id -> its checked reply,
    or the OrchError that run's reply gave (one broken run does not hide the others).

    Runs that share a snapshot and a backend are asked in one `hostctl status-all`
    process (one python start, one question to the backend); a snapshot made before
    status-all existed says "invalid choice", and its runs are asked one `status` each,
    in a second round trip."""
    groups: Dict[Tuple, List[Tuple[str, str]]] = {}
    for workdir, code_hash, run_id, backend in runs:
        key = (workdir, code_hash, tuple(backend.hostctl_args()))
        groups.setdefault(key, []).append((run_id, run_dir(workdir, run_id)))
    commands = [
        _hostctl(transport, workdir, code_hash, "status-all", *[a for _, d in members for a in ("--run-dir", d)], *args)
        for (workdir, code_hash, args), members in groups.items()
    ]
    host = transport.host.name
    replies: Dict[str, object] = {}
    older = []
    for (key, members), (rc, text) in zip(groups.items(), _each_reply(transport, commands, len(runs))):
        if rc == "2" and "invalid choice" in text:
            older += [r for r in runs if (r[0], r[1], tuple(r[3].hostctl_args())) == key]
            continue
        for (run_id, _), reply in zip(members, _status_all_replies(host, rc, text, len(members))):
            replies[run_id] = reply
    if older:
        replies.update(_status_each(transport, older))
    return replies


def _status_all_replies(host: str, rc: Optional[str], text: str, count: int) -> List[object]:
    """The checked replies of one `status-all` (or the error each of its runs gets)."""
    if rc is None:
        return [OrchError(f"no status reply from {host}", ExitCode.REMOTE)] * count
    if rc != "0":
        return [helper_failed(host, rc, text)] * count
    try:
        doc = hostdocs.loads(text.strip().splitlines()[-1])
        listed = doc["replies"] if isinstance(doc, dict) else None
    except (ValueError, IndexError, KeyError, RecursionError):
        listed = None
    if not isinstance(listed, list) or len(listed) != count:
        return [OrchError(f"host helper on {host} printed no status-all reply orch can use", ExitCode.REMOTE)] * count
    out: List[object] = []
    for item in listed:
        try:
            out.append(hostdocs.check_status_reply(item))
        except hostdocs.BadDocument as exc:
            out.append(OrchError(f"host helper on {host} sent a reply orch cannot use: {exc}", ExitCode.REMOTE))
    return out


def _each_reply(transport: Transport, commands: List[str], runs: int) -> List[Tuple[Optional[str], str]]:
    """Run host helper commands one after another in one round trip; (exit code or None
    when the output ended early, output) of each.  Each output ends with an unguessable
    mark and its exit code, so a reply cannot fake the end of another."""
    import secrets

    mark = "orch-status-" + secrets.token_hex(8)
    parts = [f"{{ {cmd}; }} 2>&1; printf '\\n%s %s\\n' {shell.quote(mark)} \"$?\"" for cmd in commands]
    host = transport.host.name
    res = transport.run(
        "; ".join(parts), check=False, max_output=hostdocs.MAX_REPLY_BYTES * min(runs, 4), timeout=STATUS_TIMEOUT_S
    )
    if res.overflow:
        raise OrchError(f"host helpers on {host} printed more than orch reads for {runs} runs", ExitCode.REMOTE)
    # stdout: REPLY1 \n MARK RC1 \n REPLY2 \n MARK RC2 \n ...
    chunks = res.stdout.split("\n" + mark + " ")
    out: List[Tuple[Optional[str], str]] = []
    for i in range(len(commands)):
        if i + 1 >= len(chunks):
            out.append((None, ""))
            continue
        text = chunks[i] if i == 0 else chunks[i].partition("\n")[2]
        out.append((chunks[i + 1].partition("\n")[0].strip(), text))
    return out


def _status_each(transport: Transport, runs: List[Tuple[str, str, str, JobBackend]]) -> Dict[str, object]:
    """One `hostctl status` per run, all in one round trip (snapshots without status-all)."""
    commands = [
        _hostctl(transport, workdir, code_hash, "status", "--run-dir", run_dir(workdir, run_id), *b.hostctl_args())
        for workdir, code_hash, run_id, b in runs
    ]
    host = transport.host.name
    replies: Dict[str, object] = {}
    for (_, _, run_id, _), (rc, text) in zip(runs, _each_reply(transport, commands, len(runs))):
        if rc is None:
            replies[run_id] = OrchError(f"no status reply from {host} for {run_id}", ExitCode.REMOTE)
            continue
        if rc != "0":
            replies[run_id] = helper_failed(host, rc, text)
            continue
        try:
            replies[run_id] = hostdocs.check_status_reply(hostdocs.loads(text.strip().splitlines()[-1]))
        except (ValueError, IndexError, RecursionError):
            replies[run_id] = OrchError(f"host helper on {host} printed no JSON for {run_id}", ExitCode.REMOTE)
        except hostdocs.BadDocument as exc:
            replies[run_id] = OrchError(f"host helper on {host} sent a reply orch cannot use: {exc}", ExitCode.REMOTE)
    return replies


def not_on_host(run_dir, record: Dict, where: Optional[str]) -> OrchError:
    """The error for a run whose folder the host no longer has (status, logs, cancel, fetch).
    RUN_DIR: its local folder; RECORD: its local.json; WHERE: its folder on the host."""
    run_id = run_dir.name
    if record.get("host_removed"):  # orch itself removed it (orch smoke's cleanup)
        return OrchError(
            f"run {run_id} is not on {record['host']} ({where}): {record['host_removed']}",
            ExitCode.RUN_STATE,
            hint=f"its fetched results are in {run_dir}",
        )
    return OrchError(
        f"run {run_id} is not on {record['host']} ({where}): deleted there, or its launch was interrupted",
        ExitCode.RUN_STATE,
        hint=f"fetched results, if any, are in {run_dir}; `orch run "
        f"{record.get('experiment')} --resume {run_id}` launches its jobs again",
    )


def note_cancel(run_dir, record: Dict, result: Dict) -> None:
    """Keep what a cancel saw in local.json's job_states, which `orch runs` shows without
    SSH: each job it stopped as cancelled, the others in the state they were in.  The reply
    is the host's: only the run's own jobs, in one of the contract's states, are kept."""
    from orchestrator.contract import records
    from remote.jobstate import SHOWN

    names = {job["name"] for job in records.planned_jobs(run_dir, record)}
    seen = dict(record.get("job_states") or {})
    seen.update(
        {
            i["name"]: "cancelled" if i["changed"] else i["state"]
            for i in result["jobs"]
            if not i.get("error") and i["name"] in names and (i["changed"] or i["state"] in SHOWN)
        }
    )
    records.note_states(run_dir, record, seen)


def remote_cancel(
    transport: Transport,
    workdir: str,
    code_hash: str,
    run_id: str,
    jobs: List[str],
    backend: JobBackend,
) -> Dict:
    args = ["cancel", "--run-dir", run_dir(workdir, run_id), *backend.hostctl_args()]
    for job in jobs:
        args += ["--job", job]
    try:
        return _json(transport, _hostctl(transport, workdir, code_hash, *args), hostdocs.check_cancel_reply)
    except SchedulerUnanswered as exc:
        # Without the scheduler nothing can be stopped, and the host helper changed nothing.
        why = exc.said.split("; nothing was cancelled")[0]
        raise OrchError(
            f"{backend.unanswered_words} did not answer on {transport.host.name}; nothing was cancelled ({why})",
            ExitCode.REMOTE,
            hint=f"try again once it answers: `orch cancel {run_id}{''.join(' ' + j for j in jobs)}`",
        ) from None


def follow_command(
    transport: Transport,
    workdir: str,
    code_hash: str,
    run_id: str,
    jobs: List[str],
    lines: int,
    backend: JobBackend,
    follow: bool = True,
) -> str:
    """Shell text that prints the jobs' logs as they grow and ends when every job has ended,
    whatever runs them (`remote.hostctl follow`); FOLLOW false: their last lines, once (a job
    without a log: its scheduler's output, named on stderr by TAIL_OUTPUT_MARK)."""
    args = ["follow", "--lines", str(lines), *backend.hostctl_args(), *([] if follow else ["--no-follow"])]
    for job in jobs:
        args += ["--job-dir", f"{run_dir(workdir, run_id)}/jobs/{job}"]
    return _hostctl(transport, workdir, code_hash, *args)


def _hostctl(transport: Transport, workdir: str, code_hash: str, *args: str) -> str:
    return hostctl(transport.host.python_or_default, code_dir(workdir, code_hash), *args, "--workdir", workdir)
