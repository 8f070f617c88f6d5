"""The bootstrap flow: probe -> plan -> run the steps (long ones detached) -> verify -> record.

The decisions live in pure modules (probe, gpu, torch_select, flashattn, plan); this one only
moves text between them and the host:

    1 round trip   probe (facts + the host-side step records)        -> plan
    per step       run it (attached, or detached with the log followed), then re-probe and re-plan
    at the end     state.json on the host, facts in .orch/hosts/HOST.facts.json,
                   the host config's `python` = the env's interpreter

A re-run after success is the probe alone: "nothing to do". What happens along the way is
reported to a `Progress` (orchestrator/provision/progress.py); `orch bootstrap` renders it.
"""

from __future__ import annotations

import hashlib
import time
from typing import Dict, List, Optional, Sequence

from orchestrator import backends
from orchestrator.config.envspec import EnvSpec
from orchestrator.config.project import Project
from orchestrator.errors import ExitCode, OrchError
from orchestrator.provision import probe, scripts
from orchestrator.provision.plan import SCRIPTS, Layout, Plan, Step, build_plan, state_json, validate_force
from orchestrator.provision.progress import Progress
from orchestrator.provision.steps import Runner, failure


def read_scripts(project: Project) -> Dict[str, str]:
    """The step scripts, uploaded to the host before the first step runs."""
    return scripts.read_scripts(SCRIPTS, project.root)


def verify_digest(texts: Dict[str, str]) -> str:
    return hashlib.sha256(texts["verify.py"].encode()).hexdigest()[:16]


def default_env(project: Project, host: str) -> str:
    """The env this host was last bootstrapped with (local record), else `default`."""
    saved = probe.load_facts(project.root, host)
    if saved is not None:
        env = (saved[1].get("bootstrap") or {}).get("env")
        if isinstance(env, str) and env:
            return env
    return "default"


def _blocked_error(step: Step) -> OrchError:
    code = ExitCode.HOST_TOOLS if step.blocked_code == "host" else ExitCode.CONFIG
    return OrchError(f"bootstrap step {step.name} is blocked: {step.why}", code, hint=step.hint)


def _probe(transport, spec: EnvSpec, project: Project) -> probe.HostFacts:
    # The env's interpreter (relative: under the workdir, resolved by the probe) and a custom conda's python.
    rel = Layout("", spec.name)
    pythons = [rel.env_python.lstrip("/")]
    if spec.conda.prefix:
        pythons.append(spec.conda.prefix.rstrip("/") + "/bin/python")
    return probe.run_probe(transport, pythons, project_root=project.root)


def _summary(plan: Plan, facts: probe.HostFacts) -> dict:
    return {
        "env": plan.spec.name,
        "env_python": plan.env_python,
        "spec_digest": plan.spec.digest(),
        "torch": plan.torch.describe(),
        "flash_attn": plan.flash_attn.describe(),
        "flash_attn_kind": plan.flash_attn.kind,
        "steps": {s.name: s.state for s in plan.steps},
        "verify": facts.verify,
        "updated": time.time(),
    }


def bootstrap(
    project: Project,
    host: str,
    *,
    env: Optional[str] = None,
    dry_run: bool = False,
    force: Sequence[str] = (),
    accept_anaconda_tos: bool = False,
    trust_new_host_key: bool = False,
    break_lock: bool = False,
    progress: Optional[Progress] = None,
) -> dict:
    """Take `host` to the env spec's verified environment; -> the result (`--json` prints it)."""
    from orchestrator.config.envspec import load
    from orchestrator.config.hosts import resolve_host, set_host_key
    from orchestrator.transport.connect import open_transport

    progress = progress or Progress()
    force_left = set(validate_force(force))
    env_name = env or default_env(project, host)
    spec = load(project.root, env_name)
    cfg = resolve_host(project, host)
    step_scripts = read_scripts(project)
    digest = verify_digest(step_scripts)
    start = time.time()
    backend = backends.for_host(cfg)

    def plan_for(facts: probe.HostFacts) -> Plan:
        return build_plan(
            facts,
            spec,
            host=host,
            host_python=cfg.python,
            force=sorted(force_left),
            accept_tos=accept_anaconda_tos,
            verify_digest=digest,
            backend=backend,
        )

    with open_transport(project, host, trust_new_host_key) as transport:
        facts = _probe(transport, spec, project)
        plan = plan_for(facts)
        probe.save_facts(project.root, host, facts, {"bootstrap": _summary(plan, facts)})
        progress.planned(f"{host}: {cfg.display()}", facts, plan, time.time() - start)
        if dry_run:
            return {"dry_run": True, "plan": plan.to_dict(), "facts": facts.to_dict()}

        runner = Runner(transport, plan, host, progress, detached=backend.detached_steps(transport, plan.layout))
        ran: List[str] = []
        if plan.pending:
            runner.lock.acquire(break_lock, warn=progress.warn)
            # Probed before the lock was ours: another bootstrap may have done steps since.
            facts = _probe(transport, spec, project)
            plan = plan_for(facts)
        try:
            if plan.pending:
                runner.upload_scripts(step_scripts)
            while True:
                step = next((s for s in plan.steps if s.state in ("todo", "running", "blocked")), None)
                if step is None:
                    break
                if step.state == "blocked":
                    raise _blocked_error(step)
                if step.name in ran:
                    raise OrchError(
                        f"step {step.name} succeeded but is still not done on the host: {step.why}",
                        ExitCode.REMOTE,
                        hint=f"inspect {plan.layout.log(step.name)}",
                    )
                runner.plan = plan
                rc, step_log = runner.run_step(step)
                ran.append(step.name)
                if step.name in force_left:
                    force_left.discard(step.name)
                    if step.name != "verify":
                        force_left.add("verify")
                facts = _probe(transport, spec, project)
                plan = plan_for(facts)
                runner.write_state(state_json(plan, facts.state, time.time()))
                if step.name == "verify":
                    progress.verified(facts.verify)
                if rc != 0:
                    probe.save_facts(project.root, host, facts, {"bootstrap": _summary(plan, facts)})
                    raise failure(step, rc, step_log, plan.layout, host)
        finally:
            runner.lock.release()

    # Everything is done: jobs use the env's interpreter by absolute path.
    if cfg.python != plan.env_python:
        try:
            path = set_host_key(project, host, "python", plan.env_python)
            progress.note(f"host config: python = {plan.env_python} ({path})")
        except OrchError as exc:
            progress.warn(f"could not record python in the host config: {exc.message}", exc.hint)
    summary = _summary(plan, facts)
    probe.save_facts(project.root, host, facts, {"bootstrap": summary})
    elapsed = time.time() - start
    progress.finished(host, spec.name, ran, elapsed)
    return {"dry_run": False, "ran": ran, "nothing_to_do": not ran, "seconds": round(elapsed, 2), **summary}
