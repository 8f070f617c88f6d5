"""Launch in as few round trips as the work allows (issue 15).

The controller knows the code hash and the data hashes before it connects, and - from
the last launch on this host (HOSTS_CACHE) - the host's absolute workdir and GPUs (and,
for a scheduler, the cluster it checked the jobs against: Slurm's partitions).  So
one command (remote/check_and_launch.py) reports the host's facts, what of the code and
data it lacks, and launches the run when nothing is missing and the facts still hold.
Otherwise it readies what the transfers need (a staging folder, the data folder), the
transport sends only what is missing, and a second command publishes the code snapshot and
launches.  Warm: 1 command; cold: the transfers + 2 commands.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from orchestrator.contract import hostdocs
from orchestrator.errors import ExitCode, OrchError
from orchestrator.runs import hostops
from orchestrator.transport import shell
from orchestrator.transport.base import Transport

# Creates and enters the workdir, then hands over to the host's python (stdin, the
# request, passes through); without one, says so in prepare's records, with the tools
# prepare looks for (hostops.tools_to_find), so the missing python is what is said.
_SHELL = r"""
wd="$1"; py="$2"; program="$3"; shift 3
rec() { printf '%s=%s\0' "$1" "$2"; }
mkdir -p -- "$wd" && cd -- "$wd" || { rec error "cannot create workdir $wd"; exit 0; }
if command -v "$py" >/dev/null 2>&1 || [ -x "$py" ]; then exec "$py" -c "$program"; fi
rec workdir "$PWD"; rec python no
for t in "$@"; do
  if command -v "$t" >/dev/null 2>&1; then rec "$t" yes; else rec "$t" no; fi
done
"""
# Host-side, so it lives in remote/; sent inline because it runs before the snapshot is there.
_PROGRAM = Path(__file__).resolve().parents[2] / "remote" / "check_and_launch.py"
HOSTS_CACHE = Path(".orch") / "hosts"  # under the project: <host>.launch.json


class NotLaunched(OrchError):
    """The host said why it cannot run the launch at all: nothing of the run is there."""


class RunOnHost(NotLaunched):
    """The host has a run of that name already (WHERE: its folder there)."""

    def __init__(self, message: str, where: str, hint: str = ""):
        super().__init__(message, ExitCode.RUN_STATE, hint)
        self.where = where


@dataclass
class Reply:
    state: hostops.HostState
    code: bool  # the snapshot is complete on the host
    missing_data: List[str]  # of the request's data paths (relative to the workdir)
    run_exists: bool
    launch: Optional[Dict]  # hostctl launch's reply; None: not launched
    listed_gpus: List[str]  # what the host itself lists (state.gpus may be the config's)
    probe: Optional[str] = None  # the backend's launch_probe output; None: none, or it failed


def command(transport: Transport, backend=None) -> str:
    host = transport.host
    return shell.join(
        [
            "sh",
            "-c",
            _SHELL,
            "sh",
            transport.workdir,
            host.python_or_default,
            _PROGRAM.read_text(),
            *hostops.tools_to_find(backend),
        ]
    )


def check_and_launch(transport: Transport, backend, request: Dict) -> Reply:
    """One round trip; raises what prepare raises (a workdir orch cannot use, a missing
    tool or python), and one message for a reply that is not the contract's."""
    out = hostops.reply_text(transport, command(transport, backend), stdin=json.dumps(request))
    facts, gpus = hostops.parse_prepare(out)
    try:
        state = hostops.state_from_facts(transport.host, facts, gpus, backend)
    except OrchError as exc:
        # The host launches only with its tools and python there: nothing was started.
        raise NotLaunched(exc.message, exc.code, exc.hint) from None
    host = transport.host.name
    if "reply" not in facts:
        raise OrchError(
            f"the launch check on {host} printed no reply: {out[-300:]!r}",
            ExitCode.REMOTE,
            hint=f"is {transport.host.python_or_default!r} on {host} a python 3?",
        )
    try:
        doc = hostdocs.loads(facts["reply"])
        if not (
            isinstance(doc, dict)
            and isinstance(doc.get("code"), bool)
            and isinstance(doc.get("run_exists"), bool)
            and isinstance(doc.get("missing_data"), list)
            and all(isinstance(p, str) for p in doc["missing_data"])
        ):
            raise hostdocs.BadDocument("not {code: bool, missing_data: [str], run_exists: bool, launch}")
        launched = None if doc.get("launch") is None else hostdocs.check_launch_reply(doc["launch"])
        probed = doc.get("probe")
        if probed is not None and not (
            isinstance(probed, dict) and isinstance(probed.get("rc"), int) and isinstance(probed.get("text"), str)
        ):
            raise hostdocs.BadDocument("probe: not {rc: int, text: str}")
    except (ValueError, RecursionError, hostdocs.BadDocument) as exc:
        raise OrchError(f"the launch check on {host} sent a reply orch cannot use: {exc}", ExitCode.REMOTE) from None
    text = probed["text"] if probed and probed["rc"] == 0 else None
    return Reply(state, doc["code"], doc["missing_data"], doc["run_exists"], launched, gpus, text)


def probe_request(backend, known: Optional[str]) -> Optional[Dict]:
    """The request's `probe`: the backend's launch_probe, and the output the host must print
    to launch at once - KNOWN, the last launch's, when its jobs pass the checks on it (else
    none: the host then only reports it, and the controller checks it before launching)."""
    if not backend.launch_probe:
        return None
    fine = isinstance(known, str) and not backend.launch_problems(known)
    return {"argv": list(backend.launch_probe), "expect": known if fine else None}


def refuse_never_starting(backend, reply: Reply, host) -> None:
    """Refuse a launch whose jobs could never run as the host's options ask (Slurm: a
    slurm.time over the partition's limit, a partition that is not there), as the
    backend's checks find from the probe's output.  Nothing was submitted."""
    problems = backend.launch_problems(reply.probe) if reply.probe is not None else []
    if problems:
        raise NotLaunched(
            f"{host.name}: " + "; ".join(p.message for p in problems) + "; nothing was submitted",
            ExitCode.CONFIG,
            hint="; ".join(p.hint for p in problems if p.hint) + f" (`orch hosts check {host.name}` shows them)",
        )


def probe_changed(request: Dict, reply: Reply) -> bool:
    """The host's probe output is not the one the request expected (so it did not launch):
    set the new one as expected and return True, for a next check_and_launch."""
    asked = request.get("probe")
    if not asked or reply.probe is None or reply.probe == asked.get("expect"):
        return False
    request["probe"] = {**asked, "expect": reply.probe}
    return True


def _cache_file(root: Path, host) -> Path:
    return root / HOSTS_CACHE / f"{host.name}.launch.json"


def known_host(root: Path, host) -> Optional[Dict]:
    """What the last launch learnt of HOST (workdir, gpus), if its config has not changed
    since; None otherwise.  Only a guess: the host checks it before launching."""
    try:
        doc = json.loads(_cache_file(root, host).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("config") != [host.workdir, host.python_or_default]:
        return None
    if not isinstance(doc.get("workdir"), str) or not isinstance(doc.get("gpus"), list):
        return None
    if not isinstance(doc.get("probe"), str):
        doc.pop("probe", None)
    return doc


def remember(root: Path, host, reply: Reply) -> None:
    path = _cache_file(root, host)
    doc = {"config": [host.workdir, host.python_or_default], "workdir": reply.state.workdir, "gpus": reply.listed_gpus}
    if reply.probe is not None:
        doc["probe"] = reply.probe
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(doc) + "\n")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk: no half file left behind
        # only a cache: the next launch asks the host again
