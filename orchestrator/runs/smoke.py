"""`orch smoke HOST`: a CI-style checklist that proves a host can run experiments.

Each step is timed; the first failure stops the checklist (later steps are skipped),
but a launched run is always cleaned up on the host.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Dict, List
from xml.etree import ElementTree as ET

from orchestrator import backends
from orchestrator.config import experiments
from orchestrator.config.project import Project
from orchestrator.contract import records
from orchestrator.errors import ExitCode, OrchError
from orchestrator.runs import codesync, hostops
from orchestrator.runs import launch as runner
from orchestrator.runs.state import rows_from_remote
from orchestrator.terminal import last_lines
from orchestrator.transport import shell
from orchestrator.transport.base import Transport
from remote.jobstate import DONE, LOST, TERMINAL

_IMPORTS = (
    "import json, sys\n"
    "import torch, transformers\n"
    "print(json.dumps({'python': sys.version.split()[0], 'torch': torch.__version__,"
    " 'cuda': torch.version.cuda, 'cuda_available': torch.cuda.is_available(),"
    " 'transformers': transformers.__version__}))\n"
)


@dataclass
class Step:
    name: str
    status: str = "pending"  # passed | failed | skipped
    seconds: float = 0.0
    detail: str = ""
    data: Dict = field(default_factory=dict)


@dataclass
class SmokeContext:
    project: Project
    transport: Transport
    experiment: str
    overrides: List[str]
    timeout: float
    run_id: str = ""
    workdir: str = ""
    code_hash: str = ""
    gpus: List[str] = field(default_factory=list)
    launched: bool = False
    failed: bool = False  # an earlier step failed: cleanup keeps the run's logs on the host
    verify: Dict = field(default_factory=dict)  # bootstrap's last verify.json on the host (probe)


class Skip(Exception):
    """The step does not apply to this host (e.g. GPU kernels on a CPU host)."""


def step_connect(ctx: SmokeContext) -> str:
    state = hostops.prepare(ctx.transport, backends.for_host(ctx.transport.host))
    ctx.workdir, ctx.gpus = state.workdir, state.gpus
    ctx.transport.learn_tools(state.tools)
    return f"{ctx.transport.host.display()}{ctx.transport.verified}, workdir {state.workdir}"


def step_probe(ctx: SmokeContext) -> str:
    from orchestrator.provision.gpu import summary
    from orchestrator.provision.probe import run_probe, save_facts

    facts = run_probe(ctx.transport)
    save_facts(ctx.project.root, ctx.transport.host.name, facts)
    ctx.verify = facts.verify if isinstance(facts.verify, dict) else {}
    # What the job backend needs of the host (Slurm: a partition that exists, GPU gres).
    errors = [p for p in backends.for_host(ctx.transport.host).host_problems(facts) if p.level == "error"]
    if errors:
        raise OrchError(errors[0].message, ExitCode.FAILED, hint=errors[0].hint)
    return f"{facts.os}, {facts.cpus} CPUs; GPU: {summary(facts.gpu)}"


def step_imports(ctx: SmokeContext) -> str:
    python = ctx.transport.host.python_or_default
    res = ctx.transport.run(shell.join([python, "-c", _IMPORTS]), check=False, timeout=120)
    if res.rc != 0:
        last = last_lines(res.stderr or res.stdout, 1) or ["no output"]
        raise OrchError(
            f"{python} cannot import torch and transformers: {last[0]}",
            ExitCode.FAILED,
            hint=f"run `orch bootstrap {ctx.transport.host.name}`, or point `python:` at an env that has them",
        )
    info = _report(res, f"{python} -c 'import torch, transformers'")
    cuda = f"CUDA {info.get('cuda')}, GPU visible" if info.get("cuda_available") is True else "no CUDA GPU visible"
    if _on_login_node(ctx):
        cuda += " on the login node (the jobs' GPUs are checked by the smoke run)"
    return f"python {info.get('python')}, torch {info.get('torch')}, transformers {info.get('transformers')}, {cuda}"


def _on_login_node(ctx: SmokeContext) -> bool:
    """A Slurm host: the checks run over SSH run on its login node, never where the jobs run."""
    return backends.for_host(ctx.transport.host).login_node


def _report(res, what: str) -> Dict:
    """The JSON object a check on the host printed as its last line.  Untrusted, like all
    it prints: anything else (noise after it, not JSON, not an object) is one message."""
    from orchestrator.contract.hostdocs import parse_json_object

    lines = res.stdout.strip().splitlines()
    report = parse_json_object(lines[-1]) if lines else None
    if report is None:
        raise OrchError(f"{what} printed no report: {(res.stderr or res.stdout)[-300:]!r}", ExitCode.FAILED)
    return report


def step_sync(ctx: SmokeContext) -> str:
    ctx.code_hash, sent = codesync.sync_code(ctx.transport, ctx.project.root, ctx.workdir)
    return f"code {ctx.code_hash} ({sent} files sent)"


def step_kernels(ctx: SmokeContext) -> str:
    python = ctx.transport.host.python_or_default
    code = hostops.code_dir(ctx.workdir, ctx.code_hash)
    res = ctx.transport.run(shell.in_dir(code, shell.join([python, "bootstrap/verify.py"])), check=False, timeout=300)
    report = _report(res, "bootstrap/verify.py")
    checks = report.get("checks")
    checks = {k: v for k, v in checks.items() if isinstance(v, dict)} if isinstance(checks, dict) else {}
    failed = {k: v for k, v in checks.items() if v.get("status") == "failed"}
    if failed:
        raise OrchError(
            "kernel checks failed: " + "; ".join(f"{k}: {v.get('error', v)}" for k, v in failed.items()),
            ExitCode.FAILED,
        )
    ran = [k for k, v in checks.items() if v.get("status") == "ok"]
    if not report.get("cuda_available"):
        if _on_login_node(ctx):
            raise Skip(
                "ran on the Slurm login node, which has no CUDA GPU: bf16 matmul ran on its CPU, SDPA/flash-attn "
                f"GPU checks skipped (the smoke run checks that the jobs use their GPUs; {_bootstrap_verified(ctx)})"
            )
        raise Skip("no CUDA GPU: bf16 matmul ran on the CPU, SDPA/flash-attn GPU checks skipped")
    return "passed: " + ", ".join(ran)


def _bootstrap_verified(ctx: SmokeContext) -> str:
    """What bootstrap's verify, a job on a GPU node, found of the GPU checks: they ran there only
    when its torch saw a GPU."""
    host, verify = ctx.transport.host.name, ctx.verify
    if not verify:
        return f"`orch bootstrap {host}` runs these checks as a job on a GPU node"
    if verify.get("cuda_available"):
        return f"`orch bootstrap {host}` ran them as a job on a GPU node" + ("" if verify.get("ok") else ", and failed")
    return (
        f"`orch bootstrap {host}` skipped them too: its torch ({verify.get('torch') or 'none'}) saw no CUDA GPU on "
        f"the GPU node; {torch_fix(ctx.project, ctx.transport.host)}"
    )


def torch_fix(project: Project, host) -> str:
    """What gives HOST's jobs a torch that uses their GPUs: for an env whose torch orch does not
    install (torch.version: preinstalled), another env, not the same bootstrap again."""
    from orchestrator.config import envspec
    from orchestrator.provision.plan import cpu_torch_fix

    found = re.search(r"/envs/([^/]+)/bin/python[0-9.]*$", host.python_or_default or "")
    try:
        spec = envspec.load(project.root, found.group(1)) if found else None
    except OrchError:
        spec = None
    if spec is not None:
        return cpu_torch_fix(spec, host.name)
    return f"`orch bootstrap {host.name}` installs a CUDA build of torch"


def step_run(ctx: SmokeContext) -> str:
    exp, _ = experiments.load(ctx.project, ctx.experiment, ctx.overrides)
    ctx.run_id = f"smoke-check-{time.strftime('%Y%m%d-%H%M%S')}"
    launched = runner.launch(ctx.project, ctx.transport, exp, ctx.run_id)
    ctx.launched = True
    doc = records.load_resolved(ctx.project.run_dir(ctx.run_id))
    deadline = time.time() + ctx.timeout
    while True:
        remote = hostops.remote_status(
            ctx.transport, ctx.workdir, launched.code_hash, ctx.run_id, backends.for_host(ctx.transport.host)
        )
        rows = rows_from_remote(remote, doc["jobs"], backends.for_host(ctx.transport.host))
        if all(r.state in TERMINAL + (LOST,) for r in rows):
            break
        if time.time() > deadline:
            # Say where each job is stuck: a scheduler's queue state and reason included.
            stuck = ", ".join(
                f"{r.name} {r.state}" + (f" ({r.note})" if r.note else "")
                for r in rows
                if r.state not in TERMINAL + (LOST,)
            )
            raise OrchError(f"run {ctx.run_id} did not finish in {ctx.timeout:g} s: {stuck}", ExitCode.FAILED)
        time.sleep(1.0)
    bad = [r for r in rows if r.state != DONE]
    if bad:
        raise OrchError(
            "jobs did not finish: " + ", ".join(f"{r.name} {r.state} {r.reason}".strip() for r in bad),
            ExitCode.FAILED,
            hint=f"`orch logs {ctx.run_id}` shows their output",
        )
    section = {"pretrain": exp.pretrain}  # the other roles train (or score) under train:
    auto = {j["name"] for j in doc["jobs"] if section.get(j.get("role"), exp.train).device == "auto"}
    check_gpus_used(
        [r for r in rows if r.name in auto],
        ctx.transport.host.name,
        ctx.run_id,
        torch_fix(ctx.project, ctx.transport.host),
    )
    return f"{ctx.run_id}: {', '.join(r.name for r in rows)} done on {ctx.transport.host.name}" + _devices(rows)


def check_gpus_used(rows, host: str, run_id: str, fix: str = "") -> None:
    """ROWS: jobs with train.device auto.  Those given a GPU that trained on the CPU (torch
    without CUDA, or blind to the GPU): the host cannot run GPU experiments, whatever their
    results.  (A job that asks for the CPU, train.device: cpu, is not one.)"""
    unused = [r for r in rows if r.gpu_unused]
    if unused:
        raise OrchError(
            f"jobs given a GPU ran on the CPU: {', '.join(f'{r.name} (GPU {r.gpu})' for r in unused)}; torch on "
            f"{host} cannot use the GPUs (`orch logs {run_id} {unused[0].name}` says why). "
            f"Fix: {fix or f'`orch bootstrap {host}` installs a CUDA build of torch'}; to check a CPU-only run, "
            "`--set train.device=cpu`",
            ExitCode.FAILED,
        )


def _devices(rows) -> str:
    """' (on cuda)' / ' (on cpu)': where the jobs ran, as their progress lines say."""
    devices = sorted({r.device for r in rows if r.device})
    return f" (on {', '.join(devices)})" if devices else ""


def step_fetch_eval(ctx: SmokeContext) -> str:
    from orchestrator.results.evaluate import check_min_accuracy, evaluate_run
    from orchestrator.results.report import pct
    from orchestrator.runs.fetch import fetch

    fetch(ctx.project, ctx.transport, ctx.run_id, partial=False)
    metrics = evaluate_run(ctx.project.run_dir(ctx.run_id))
    check_min_accuracy(metrics)
    return f"accuracy {pct(metrics['accuracy'])} (threshold {pct(metrics.get('min_accuracy', 0))})"


def step_cleanup(ctx: SmokeContext) -> str:
    if not ctx.launched:
        raise Skip("nothing was launched")
    result = hostops.remote_cancel(
        ctx.transport, ctx.workdir, ctx.code_hash, ctx.run_id, [], backends.for_host(ctx.transport.host)
    )
    local = ctx.project.run_dir(ctx.run_id)
    record = records.load_record(local)
    hostops.note_cancel(local, record, result)  # `orch runs` shows where the check's jobs ended
    where = hostops.run_dir(ctx.workdir, ctx.run_id)
    if ctx.failed:  # the failure's evidence: `orch logs` reads it there
        return (
            f"stopped its jobs; kept {where} on {ctx.transport.host.name} for `orch logs {ctx.run_id}` "
            "(remove it there when done)"
        )
    ctx.transport.run(shell.join(["rm", "-rf", "--", where]))
    records.update_record(local, {"host_removed": "orch smoke removed it after its check passed"})
    return f"removed {where} (local record and results kept in runs/{ctx.run_id})"


STEPS: List = [
    ("connect", step_connect),
    ("probe", step_probe),
    ("sync code", step_sync),
    ("env imports torch+transformers", step_imports),
    ("GPU kernels (bf16 matmul, SDPA, flash-attn)", step_kernels),
    ("smoke run (through the host's job backend)", step_run),
    ("fetch + evaluate", step_fetch_eval),
    ("cleanup", step_cleanup),
]


def run_checklist(ctx: SmokeContext, on_start: Callable[[str], None], on_end: Callable[[Step], None]) -> List[Step]:
    steps: List[Step] = []
    failed = False
    for name, fn in STEPS:
        step = Step(name)
        if failed and fn is not step_cleanup:
            step.status, step.detail = "skipped", "an earlier step failed"
        else:
            on_start(name)
            start = time.time()
            try:
                step.detail = fn(ctx)
                step.status = "passed"
            except Skip as exc:
                step.status, step.detail = "skipped", str(exc)
            except OrchError as exc:
                step.status, step.detail = "failed", str(exc)
                failed = ctx.failed = True
            step.seconds = round(time.time() - start, 2)
        steps.append(step)
        on_end(step)
    return steps


# Characters XML 1.0 does not allow (C0 controls but tab, newline and carriage return;
# lone surrogates; U+FFFE, U+FFFF), and DEL and the C1 controls it discourages.  ElementTree
# writes them as they are, making a file no parser reads: a step's detail quotes the host,
# whose output can hold an ESC.
_NOT_XML = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """TEXT with each character XML may not carry shown as its escape (ESC as ``\\x1b``)."""
    return _NOT_XML.sub(lambda m: repr(m.group())[1:-1], text)


def junit_xml(host: str, steps: List[Step]) -> str:
    """A JUnit XML report of STEPS; the host's text in it is made XML-safe (_xml_text)."""
    steps = [replace(s, name=_xml_text(s.name), detail=_xml_text(s.detail)) for s in steps]
    host = _xml_text(host)
    suite = ET.Element(
        "testsuite",
        name=f"orch smoke {host}",
        tests=str(len(steps)),
        failures=str(sum(s.status == "failed" for s in steps)),
        skipped=str(sum(s.status == "skipped" for s in steps)),
        time=f"{sum(s.seconds for s in steps):.2f}",
    )
    for s in steps:
        case = ET.SubElement(suite, "testcase", classname=f"orch.smoke.{host}", name=s.name, time=f"{s.seconds:.2f}")
        if s.status == "failed":
            ET.SubElement(case, "failure", message=s.detail.splitlines()[0] if s.detail else "failed").text = s.detail
        elif s.status == "skipped":
            ET.SubElement(case, "skipped", message=s.detail)
        else:
            ET.SubElement(case, "system-out").text = s.detail
    return ET.tostring(suite, encoding="unicode")


def as_json(host: str, steps: List[Step], seconds: float) -> Dict:
    return {
        "host": host,
        "ok": not any(s.status == "failed" for s in steps),
        "seconds": round(seconds, 2),
        "steps": [asdict(s) for s in steps],
    }
