"""What a bootstrap reports while it works, as calls on one object.

provision/ never prints (no rich, no typer): the flow and the step runner call these
methods, and `orch bootstrap` (orchestrator/commands/bootstrap.py) renders them. This base
says nothing, which is what a caller that only wants the result passes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:  # annotations only: no import cycle with the modules that call these
    from orchestrator.provision.plan import Plan, Step
    from orchestrator.provision.probe import HostFacts


class Progress:
    def planned(self, where: str, facts: "HostFacts", plan: "Plan", probe_s: float) -> None:
        """The host was probed (in probe_s seconds) and the plan made; `where`: 'HOST: address'."""

    def step_started(self, step: "Step", reattach: str = "") -> None:
        """A step starts; `reattach` names the running detached step it follows instead."""

    def step_detached(self, step: "Step", where: str, log: str) -> None:
        """A step runs detached on the host (`where`: how, e.g. its tmux session), logging to `log`."""

    def step_output(self, lines: Sequence[str], skipped: int = 0) -> None:
        """Lines of a step's output (host text: never markup), after `skipped` lines left out."""

    def step_running(self, step: "Step", seconds: float) -> None:
        """A detached step is still running after `seconds` (now and then, not every poll)."""

    def step_done(self, step: "Step", seconds: float) -> None:
        """A step exited 0 after `seconds`."""

    def verified(self, result: Optional[dict]) -> None:
        """verify.py's result (None when it wrote none)."""

    def note(self, text: str) -> None:
        """A plain-text note (no markup)."""

    def warn(self, text: str, hint: str = "") -> None:
        """A plain-text warning, with an optional hint (which may be several lines)."""

    def finished(self, host: str, env: str, ran: Sequence[str], seconds: float) -> None:
        """Every step is done; `ran`: the steps this bootstrap ran (none: nothing to do)."""
