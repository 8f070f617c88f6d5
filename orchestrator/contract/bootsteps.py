"""Bootstrap's files on the host (Layout) and its planned steps (Step): what provision/plan.py
plans and what the job backends' detached-step runners (backends/tmux_steps.py,
slurm_steps.py) start, poll and stop.  Here, below both, so that neither imports the other's
package: the backends' runners once imported these from provision/plan.py, which imports them."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Dict, List

from orchestrator.transport import shell
from remote.backends.tmux import tmux_socket


@dataclass(frozen=True)
class Layout:
    """Where bootstrap keeps things on the host (all under the workdir)."""

    workdir: str
    env_name: str

    def _p(self, *parts: str) -> str:
        return posixpath.join(self.workdir, *parts)

    @property
    def root(self) -> str:
        return self._p("bootstrap")

    @property
    def scripts(self) -> str:
        return self._p("bootstrap", "scripts")

    def script(self, name: str) -> str:
        return posixpath.join(self.scripts, name)

    @property
    def logs(self) -> str:
        return self._p("bootstrap", "logs")

    def log(self, step: str) -> str:
        return posixpath.join(self.logs, f"{step}.log")

    def result(self, step: str) -> str:
        return posixpath.join(self.logs, f"{step}.result")

    def started(self, step: str) -> str:
        return posixpath.join(self.logs, f"{step}.started")

    @property
    def state(self) -> str:
        return self._p("bootstrap", "state.json")

    @property
    def wheelhouse(self) -> str:
        """Sources fetched on a login node for a build on a compute node without internet."""
        return self._p("bootstrap", "wheelhouse")

    @property
    def lock(self) -> str:
        """Held while a bootstrap runs steps (orchestrator/provision/hostlock.py)."""
        return self._p("bootstrap", "lock")

    @property
    def verify_json(self) -> str:
        return self._p("bootstrap", "verify.json")

    @property
    def downloads(self) -> str:
        return self._p("bootstrap", "downloads")

    @property
    def env_prefix(self) -> str:
        return self._p("envs", self.env_name)

    @property
    def env_python(self) -> str:
        return posixpath.join(self.env_prefix, "bin", "python")

    @property
    def tmux_socket(self) -> str:
        # The jobs' tmux server: same rule as the host helper (short path for long workdirs).
        return tmux_socket(self._p())

    @staticmethod
    def session(step: str) -> str:
        return f"orch-bootstrap-{step}"

    def conda_prefix(self, manager: str) -> str:
        return self._p("miniforge3" if manager == "miniforge" else "miniconda3")


@dataclass
class Step:
    name: str
    title: str
    state: str = "todo"  # done | todo | running | blocked | skip
    why: str = ""
    argv: List[str] = field(default_factory=list)
    env: Dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""
    detached: bool = False  # long: runs detached on the host (its backend's detached_steps), its log tailed
    timeout_s: float = 600.0
    hint: str = ""
    blocked_code: str = "config"  # config: the spec/flags must change | host: the host lacks something
    notes: List[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        """The exact shell text the step runs on the host (inside run_step.sh)."""
        if not self.argv:
            return ""
        return shell.with_env(self.argv, self.env) if self.env else shell.join(self.argv)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "state": self.state,
            "why": self.why,
            "command": self.command,
            "fingerprint": self.fingerprint,
            "detached": self.detached,
            "notes": list(self.notes),
            "hint": self.hint,
        }
