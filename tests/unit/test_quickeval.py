"""`orch eval` without Typer (issue 15): which command lines take the quick path, and that
a real `orch eval` process gives the Typer path's results and exit codes without loading
Typer, Click or pydantic (nor matplotlib without --plots)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.commands import quickeval
from tests.unit.evalruns import make_run

REPO = Path(__file__).resolve().parents[2]
PLAIN = {"run": None, "prior": None, "bands": None, "plots": False, "as_json": False, "quiet": False}


@pytest.mark.parametrize(
    "argv, parsed",
    [
        (["eval"], {}),
        (["eval", "r1"], {"run": "r1"}),
        (["eval", "r1", "--no-plots"], {"run": "r1"}),
        (["eval", "--plots", "r1", "--json"], {"run": "r1", "plots": True, "as_json": True}),
        (["-q", "eval", "--prior", "train", "r1"], {"run": "r1", "prior": "train", "quiet": True}),
        (["eval", "--bands", "poc", "--plots", "--no-plots", "-q"], {"bands": "poc", "quiet": True}),
        (["eval", "--bands", "bogus"], {"bands": "bogus"}),  # refused by the command, as Typer's is
    ],
)
def test_plain_eval_command_lines_take_the_quick_path(argv, parsed):
    assert quickeval.parse(argv) == {**PLAIN, **parsed}


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--help"],
        ["eval", "r1", "r2"],
        ["eval", "--prior"],  # no value: Typer says so
        ["eval", "--prior", "--json"],
        ["eval", "--prior=train"],
        ["eval", "--bogus"],
        ["compare", "r1", "r2"],
        ["study", "eval"],
        ["--version", "eval"],
    ],
)
def test_anything_else_goes_to_typer(argv):
    assert quickeval.parse(argv) is None


def _orch_eval(project: Path, *args: str, modules: Path):
    code = (
        "import atexit, json, runpy, sys\n"
        f"atexit.register(lambda: open({str(modules)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
        f"sys.argv = ['orch', 'eval', *{list(args)!r}]\n"
        "runpy.run_module('orchestrator.cli', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "ORCH_PROJECT": str(project)}
    return subprocess.run([sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True)


def test_orch_eval_process_without_typer(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "remote").mkdir()
    run_dir = make_run(tmp_path, "r1")
    modules = tmp_path / "modules.json"
    proc = _orch_eval(tmp_path, "r1", "--json", modules=modules)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads((run_dir / "metrics.json").read_text())
    tops = {n.split(".")[0] for n in json.loads(modules.read_text())}
    assert not tops & {"typer", "click", "pydantic", "matplotlib"}, sorted(tops)
    # the summary table, and the refusals' exit codes and messages
    assert "per-token NLL" in _orch_eval(tmp_path, "r1", modules=modules).stdout
    bad = _orch_eval(tmp_path, "r1", "--bands", "bogus", modules=modules)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --bands: expected one of auto, poc, mdlm")
    missing = _orch_eval(tmp_path, "nosuch", modules=modules)
    assert missing.returncode == 8 and "no run named 'nosuch'" in missing.stderr and "Traceback" not in missing.stderr
