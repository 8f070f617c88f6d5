"""Operations on a host's run folders, each one SSH round trip through remote.hostctl."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from . import shell
from .errors import ExitCode, OrchError
from .jobs import hostctl
from .transport import Transport

# A constant script: values arrive as positional parameters, never spliced into the text.
_PREPARE = r'''
wd="$1"; py="$2"
mkdir -p -- "$wd" && cd -- "$wd" || { echo "error=cannot create workdir $wd"; exit 0; }
echo "workdir=$(pwd)"
for t in tmux rsync nvidia-smi; do
  if command -v "$t" >/dev/null 2>&1; then echo "$t=yes"; else echo "$t=no"; fi
done
if command -v "$py" >/dev/null 2>&1 || [ -x "$py" ]; then
  echo "python=yes"
  # Which of the payload's packages the interpreter can import (find_spec: nothing is
  # imported, so this costs the interpreter's start-up, not torch's).
  "$py" -c 'import importlib.util as u
for m in ("torch", "transformers", "tokenizers", "datasets"):
    print("module_%s=%s" % (m, "yes" if u.find_spec(m) else "no"))' 2>/dev/null
else
  echo "python=no"
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | sed 's/^/gpu=/'
fi
'''


@dataclass
class HostState:
    workdir: str  # absolute
    tools: Dict[str, bool]
    gpus: List[str]
    modules: Dict[str, bool] = field(default_factory=dict)  # importable by the host's python

    def missing_modules(self, wanted: List[str]) -> List[str]:
        """Those of ``wanted`` the probe found missing (unknown counts as present)."""
        return [m for m in wanted if self.modules.get(m) is False]


def prepare(transport: Transport, need_tmux: bool = True) -> HostState:
    """Create the workdir, resolve it to an absolute path, and check the tools orch needs."""
    host = transport.host
    out = transport.run(shell.join(["sh", "-c", _PREPARE, "sh", transport.workdir, host.python_or_default])).stdout
    facts: Dict[str, str] = {}
    gpus: List[str] = []
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key == "gpu":
            gpus.append(value.strip())
        elif key:
            facts[key] = value
    if "error" in facts:
        raise OrchError(f"{host.name}: {facts['error']}", ExitCode.REMOTE, hint="check `workdir` in the host config")
    tools = {t: facts.get(t) == "yes" for t in ("tmux", "rsync", "nvidia-smi", "python")}
    if need_tmux and not tools["tmux"]:
        raise OrchError(f"{host.name} has no tmux, which orch uses to keep jobs alive without the SSH connection",
                        ExitCode.HOST_TOOLS, hint="install it on the host, e.g. `sudo apt-get install -y tmux`")
    if not tools["python"]:
        raise OrchError(f"{host.name} has no python interpreter {host.python_or_default!r}", ExitCode.HOST_TOOLS,
                        hint="run `orch bootstrap " + host.name + "` or set `python:` in the host config")
    if host.gpus:
        gpus = list(host.gpus)
    modules = {k[len("module_"):]: v == "yes" for k, v in facts.items() if k.startswith("module_")}
    return HostState(workdir=facts["workdir"], tools=tools, gpus=gpus, modules=modules)


def code_dir(workdir: str, code_hash: str) -> str:
    return f"{workdir}/code/{code_hash}"


def run_dir(workdir: str, run_id: str) -> str:
    return f"{workdir}/runs/{run_id}"


def _json(transport: Transport, command: str, stdin: Optional[str] = None) -> Dict:
    res = transport.run(command, check=False, stdin=stdin)
    if res.rc != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise OrchError(f"host helper failed on {transport.host.name} (exit {res.rc}): " + " | ".join(tail),
                        ExitCode.REMOTE)
    try:
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise OrchError(f"host helper on {transport.host.name} printed no JSON: {res.stdout[-300:]!r}", ExitCode.REMOTE)


def remote_status(transport: Transport, workdir: str, code_hash: str, run_id: str) -> Dict:
    python = transport.host.python_or_default
    cmd = hostctl(python, code_dir(workdir, code_hash), "status", "--run-dir", run_dir(workdir, run_id),
                  "--workdir", workdir)
    return _json(transport, cmd)


def remote_launch(transport: Transport, workdir: str, code_hash: str, plan: Dict) -> Dict:
    python = transport.host.python_or_default
    cmd = hostctl(python, code_dir(workdir, code_hash), "launch", "--workdir", workdir)
    return _json(transport, cmd, stdin=json.dumps(plan))


def remote_cancel(transport: Transport, workdir: str, code_hash: str, run_id: str, jobs: List[str]) -> Dict:
    python = transport.host.python_or_default
    args = ["cancel", "--run-dir", run_dir(workdir, run_id), "--workdir", workdir]
    for job in jobs:
        args += ["--job", job]
    return _json(transport, hostctl(python, code_dir(workdir, code_hash), *args))
