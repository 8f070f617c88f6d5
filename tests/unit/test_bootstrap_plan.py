"""The bootstrap plan: facts + env spec -> ordered steps (done / todo / blocked / skip), why,
exact commands, fingerprints; plus the env spec loader."""

import copy
from pathlib import Path

import pytest
from hostfixtures import make_facts, run_probe_locally, with_env_python, write_gpu_shims

from orchestrator.config import envspec
from orchestrator.errors import ExitCode, OrchError
from orchestrator.provision import plan as bp
from orchestrator.provision import probe

REPO = Path(__file__).resolve().parents[2]
W = "/home/u/orch"


def spec(**data):
    name = data.pop("name", "default")
    return envspec.parse(data, name)


def states(plan):
    return {s.name: s.state for s in plan.steps}


def finished(plan, facts, rc=0, only=None):
    """Facts as the host would report them after the plan's to-do steps ran with exit code rc."""
    facts = copy.deepcopy(facts)
    for s in plan.steps:
        if s.state in ("todo", "running") and (only is None or s.name in only):
            facts.results[s.name] = {"step": s.name, "fingerprint": s.fingerprint, "rc": rc, "started": 1, "ended": 2}
    return facts


def installed(facts, plan, torch="2.11.0+cu130", torch_cuda="13.0", flash_attn=None, verify_ok=True):
    facts = with_env_python(facts, plan.env_python, torch=torch, torch_cuda=torch_cuda, flash_attn=flash_attn)
    facts.verify = {"ok": verify_ok}
    return facts


# --- the H200 fixture host, probed by the real script -------------------------------------


@pytest.fixture(scope="module")
def h200_facts(tmp_path_factory):
    shim = write_gpu_shims(tmp_path_factory.mktemp("bin"), "ok")
    out = run_probe_locally(W, [shim])
    return probe.parse_probe(out, W)


def test_default_spec_on_the_h200_needs_the_anaconda_tos(h200_facts):
    plan = bp.build_plan(h200_facts, envspec.load(REPO, "default"), host="nigel")
    conda = plan.step("conda")
    assert conda.state == "blocked" and "Terms of Service" in conda.why and "--accept-anaconda-tos" in conda.hint
    assert conda.blocked_code == "config"
    assert [s.state for s in plan.steps[1:]] == ["blocked", "blocked", "blocked", "blocked", "blocked"]
    assert plan.step("torch").why == "needs conda (blocked)"


def test_default_spec_on_the_h200_plan_and_exact_commands(h200_facts):
    plan = bp.build_plan(h200_facts, envspec.load(REPO, "default"), host="nigel", accept_tos=True, host_python="")
    assert states(plan) == {
        "conda": "todo",
        "env": "todo",
        "torch": "todo",
        "packages": "todo",
        "flash-attn": "todo",
        "verify": "todo",
    }
    s = {x.name: x for x in plan.steps}
    assert s["conda"].command == (
        f"bash {W}/bootstrap/scripts/install_conda.sh --flavor miniconda --prefix {W}/miniconda3 "
        f"--url https://repo.anaconda.com/miniconda/Miniconda3-latest-Linux-x86_64.sh "
        f"--download-dir {W}/bootstrap/downloads"
    )
    assert s["env"].command == (
        f"bash {W}/bootstrap/scripts/make_env.sh --manager conda --prefix {W}/envs/default "
        f"--python 3.11 --conda {W}/miniconda3/bin/conda --accept-tos"
    )
    assert s["torch"].command == (
        f"{W}/envs/default/bin/python -m pip install 'torch==2.11.*' --index-url https://download.pytorch.org/whl/cu130"
    )
    assert (
        s["packages"].command
        == f"{W}/envs/default/bin/python -m pip install 'transformers>=4.40' 'tokenizers>=0.15' 'pyyaml>=6' "
        "'datasets>=2.18'"
    )
    # torch 2.11 has no flash-attn release wheel: source build of the newest release, for sm90 only,
    # with the host's nvcc 13.0 (= torch's CUDA major); MAX_JOBS from this machine's RAM/cores.
    fa = s["flash-attn"]
    assert plan.flash_attn.kind == "source" and plan.flash_attn.version == "2.8.3.post1"
    assert fa.env["FLASH_ATTN_CUDA_ARCHS"] == "90" and fa.env["FLASH_ATTENTION_FORCE_BUILD"] == "TRUE"
    assert fa.command.startswith("env FLASH_ATTENTION_FORCE_BUILD=TRUE MAX_JOBS=")
    assert f"build_flash_attn.sh --python {W}/envs/default/bin/python --version 2.8.3.post1 --source" in fa.command
    assert fa.detached and fa.timeout_s == 300 * 60
    assert s["verify"].command == (
        f"{W}/envs/default/bin/python {W}/bootstrap/scripts/verify.py --out "
        f"{W}/bootstrap/verify.json --expect-flash-attn --expect-cuda"
    )
    assert not plan.nothing_to_do and not plan.host_config_done
    assert plan.to_dict()["torch"]["variant"] == "cu130"


def test_mdlm_seed_pin_on_an_a100_uses_the_2_5_6_wheel():
    facts = make_facts(gpus=[("NVIDIA A100-SXM4-80GB", "8.0", 81920)], driver="535.129.03", cuda="12.2", glibc="2.31")
    plan = bp.build_plan(facts, envspec.load(REPO, "mdlm-seed"), host="nigel", accept_tos=True)
    assert plan.torch.requirement == "torch==2.2.*" and plan.torch.variant == "cu121"
    assert plan.flash_attn.kind == "wheel"
    assert plan.flash_attn.wheel == "flash_attn-2.5.6+cu122torch2.2cxx11abiFALSE-cp39-cp39-linux_x86_64.whl"
    assert (
        "--wheel-url https://github.com/Dao-AILab/flash-attention/releases/download/v2.5.6/"
        "flash_attn-2.5.6+cu122torch2.2cxx11abiFALSE-cp39-cp39-linux_x86_64.whl" in plan.step("flash-attn").command
    )
    assert "--python 3.9" in plan.step("env").command


def test_miniforge_needs_no_tos_and_uses_its_own_url():
    plan = bp.build_plan(make_facts(), spec(manager="miniforge"), host="h")
    assert plan.step("conda").state == "todo"
    assert "Miniforge3-Linux-x86_64.sh" in plan.step("conda").command
    assert f"--prefix {W}/miniforge3" in plan.step("conda").command
    assert "--accept-tos" not in plan.step("env").command


def test_existing_conda_is_reused_and_its_tos_plugin_respected():
    user_conda = probe.CondaInstall("/home/u/miniconda3", "24.11.3", tos_plugin=True, conda_forge=False)
    facts = make_facts(conda=[user_conda])
    plan = bp.build_plan(facts, spec(manager="conda"), host="h")
    assert plan.step("conda").state == "done" and "existing conda at /home/u/miniconda3" in plan.step("conda").why
    env = plan.step("env")
    assert env.state == "blocked" and "Terms of Service" in env.why
    plan = bp.build_plan(facts, spec(manager="conda"), host="h", accept_tos=True)
    assert plan.step("env").state == "todo" and "--conda /home/u/miniconda3/bin/conda" in plan.step("env").command
    # miniforge manager with that same conda: conda-forge only, no ToS
    plan = bp.build_plan(facts, spec(manager="miniforge"), host="h")
    assert plan.step("env").state == "todo"
    # --force conda must not modify a conda orch did not install
    plan = bp.build_plan(facts, spec(manager="conda"), host="h", force=["conda"], accept_tos=True)
    assert plan.step("conda").state == "blocked" and "not installed by orch" in plan.step("conda").why


def test_venv_spec_on_a_cpu_host():
    facts = make_facts(gpus=(), pythons=[("python3", "/usr/bin/python3", "3.11.2", True, "2.13.0+cpu")])
    plan = bp.build_plan(facts, envspec.load(REPO, "venv"), host="h")
    assert states(plan) == {
        "conda": "skip",
        "env": "todo",
        "torch": "todo",
        "packages": "todo",
        "flash-attn": "skip",
        "verify": "todo",
    }
    assert plan.step("env").command == (
        f"bash {W}/bootstrap/scripts/make_env.sh --manager venv --prefix "
        f"{W}/envs/venv --python /usr/bin/python3 --system-site-packages"
    )
    assert plan.step("torch").argv[1:3] == [
        "-c",
        'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)',
    ]
    assert not plan.step("torch").detached
    assert "no NVIDIA GPU" in plan.step("flash-attn").why
    assert "--expect-cuda" not in plan.step("verify").command


def test_venv_without_a_usable_python_is_blocked():
    facts = make_facts(pythons=[("python3", "/usr/bin/python3", "3.12.3", False, None)])
    plan = bp.build_plan(facts, spec(manager="venv", python="system"), host="h")
    env = plan.step("env")
    assert env.state == "blocked" and "python3.12-venv" in env.why and env.blocked_code == "host"
    plan = bp.build_plan(make_facts(), spec(manager="venv", python="3.9"), host="h")
    assert "no python 3.9 on the host (found: 3.12)" in plan.step("env").why


# --- idempotence: fingerprints and the host's records ---------------------------------------


def simulate(facts, s, rc_for=None, **kw):
    """Run the plan the way the command does: the first pending step, then re-probe and re-plan.
    The host's effects of each step are applied to the facts. rc_for: {step: exit code}."""
    facts = copy.deepcopy(facts)
    rc_for = rc_for or {}
    clock = [100]
    for _ in range(20):
        plan = bp.build_plan(facts, s, host="h", accept_tos=True, **kw)
        step = next((x for x in plan.steps if x.state in ("todo", "running")), None)
        if step is None or step.state == "blocked":
            return facts
        clock[0] += 1
        rc = rc_for.get(step.name, 0)
        facts.results[step.name] = {
            "step": step.name,
            "fingerprint": step.fingerprint,
            "rc": rc,
            "started": clock[0],
            "ended": clock[0],
        }
        if rc:
            return facts
        if step.name == "conda":
            facts.conda = [probe.CondaInstall(f"{W}/miniconda3", "25.5.1")]
        elif step.name == "env":
            with_env_python(facts, plan.env_python)
        elif step.name == "torch":
            facts.envs[plan.env_python].packages["torch"] = "2.11.0+cu130"
            facts.envs[plan.env_python].torch_cuda = "13.0"
        elif step.name == "flash-attn":
            facts.envs[plan.env_python].packages["flash-attn"] = plan.flash_attn.version
        elif step.name == "verify":
            facts.verify = {"ok": True}
        kw.pop("force", None)
    raise AssertionError("the plan did not converge")


def _all_done(facts, s, **kw):
    return simulate(facts, s, **kw)


def test_rerun_after_success_has_nothing_to_do():
    s = spec(manager="conda", packages=["transformers>=4.40"])
    facts = _all_done(make_facts(nvcc="13.0", nvcc_path="/usr/local/cuda/bin/nvcc"), s)
    plan = bp.build_plan(facts, s, host="h", accept_tos=True, host_python=f"{W}/envs/default/bin/python")
    assert set(states(plan).values()) == {"done"}, [(x.name, x.state, x.why) for x in plan.steps]
    assert plan.nothing_to_do and plan.host_config_done


def test_a_changed_package_list_does_not_rebuild_flash_attn():
    s = spec(manager="conda", packages=["transformers>=4.40"])
    facts = _all_done(make_facts(nvcc="13.0", nvcc_path="/usr/local/cuda/bin/nvcc"), s)
    s2 = spec(manager="conda", packages=["transformers>=4.40", "einops"])
    plan = bp.build_plan(facts, s2, host="h", accept_tos=True)
    assert states(plan) == {
        "conda": "done",
        "env": "done",
        "torch": "done",
        "packages": "todo",
        "flash-attn": "done",
        "verify": "todo",
    }
    assert plan.step("packages").why == "its inputs changed since it last ran"


def test_a_changed_python_rebuilds_the_env_and_everything_after_it():
    s = spec(manager="conda", packages=["transformers>=4.40"])
    facts = _all_done(make_facts(nvcc="13.0", nvcc_path="/usr/local/cuda/bin/nvcc"), s)
    plan = bp.build_plan(
        facts, spec(manager="conda", python="3.12", packages=["transformers>=4.40"]), host="h", accept_tos=True
    )
    assert states(plan) == {
        "conda": "done",
        "env": "todo",
        "torch": "todo",
        "packages": "todo",
        "flash-attn": "todo",
        "verify": "todo",
    }
    assert plan.step("env").argv[-1] == "--recreate"


def test_resume_after_a_failure_and_force():
    s = spec(manager="conda", packages=["transformers>=4.40"])
    facts = make_facts(nvcc="13.0", nvcc_path="/usr/local/cuda/bin/nvcc")
    # conda, env, torch succeeded; packages failed
    facts2 = simulate(facts, s, rc_for={"packages": 1})
    plan2 = bp.build_plan(facts2, s, host="h", accept_tos=True)
    assert states(plan2)["torch"] == "done"
    assert plan2.step("packages").state == "todo"
    assert plan2.step("packages").why == "failed last time (exit 1): resuming here"
    assert states(plan2)["verify"] == "todo"
    # the resumed run finishes from there
    assert bp.build_plan(simulate(facts2, s), s, host="h", accept_tos=True).nothing_to_do
    # --force torch: redo it (and re-verify), leave the rest alone
    done = _all_done(facts, s)
    plan3 = bp.build_plan(done, s, host="h", accept_tos=True, force=["torch"])
    assert states(plan3) == {
        "conda": "done",
        "env": "done",
        "torch": "todo",
        "packages": "done",
        "flash-attn": "done",
        "verify": "todo",
    }
    assert plan3.step("torch").argv[-1] == "--force-reinstall"
    # --force env recreates it, so everything installed into it is redone
    plan4 = bp.build_plan(done, s, host="h", accept_tos=True, force=["env"])
    assert states(plan4) == {
        "conda": "done",
        "env": "todo",
        "torch": "todo",
        "packages": "todo",
        "flash-attn": "todo",
        "verify": "todo",
    }
    assert plan4.step("env").argv[-1] == "--recreate"
    with pytest.raises(OrchError) as exc:
        bp.validate_force(["nope"])
    assert exc.value.code == ExitCode.USAGE


def test_a_running_step_is_reattached_and_a_missing_env_redone():
    s = spec(manager="conda")
    facts = _all_done(make_facts(), s)
    facts.tmux_sessions = ["orch-bootstrap-flash-attn"]
    facts.envs[f"{W}/envs/default/bin/python"].packages["flash-attn"] = None
    plan = bp.build_plan(facts, s, host="h", accept_tos=True)
    assert plan.flash_attn.kind == "source" and plan.flash_attn.conda_cuda_version == "13.0"
    assert plan.step("flash-attn").state == "running"
    gone = _all_done(make_facts(), s)
    gone.envs.clear()
    plan = bp.build_plan(gone, s, host="h", accept_tos=True)
    assert plan.step("env").state == "todo" and "missing" in plan.step("env").why
    assert plan.step("torch").state == "todo" and plan.step("verify").state == "todo"


def test_gpu_problems_block_the_cuda_torch():
    facts = make_facts(gpu_kind="mismatch")
    plan = bp.build_plan(facts, spec(manager="miniforge"), host="h")
    torch = plan.step("torch")
    assert torch.state == "blocked" and "version mismatch" in torch.why and torch.hint.startswith("reboot")
    assert torch.blocked_code == "host"
    # pinning the CPU build is the way around it
    plan = bp.build_plan(facts, spec(manager="miniforge", torch={"cuda": "cpu"}), host="h")
    assert plan.step("torch").state == "todo" and plan.torch.variant == "cpu"


def test_missing_tmux_blocks_the_first_long_step():
    facts = make_facts(tools=("bash", "curl", "gcc"))
    plan = bp.build_plan(facts, spec(manager="miniforge"), host="h")
    assert plan.step("conda").state == "blocked" and "tmux" in plan.step("conda").why
    assert plan.step("env").why == "needs conda (blocked)"


def test_required_flash_attn_on_a_t4_is_blocked():
    facts = make_facts(gpus=[("Tesla T4", "7.5", 15360)], driver="535.129.03", cuda="12.2")
    plan = bp.build_plan(facts, spec(manager="miniforge", flash_attn={"required": True}), host="h")
    fa = plan.step("flash-attn")
    assert fa.state == "blocked" and "Turing" in fa.why
    plan = bp.build_plan(facts, spec(manager="miniforge"), host="h")
    assert plan.step("flash-attn").state == "skip" and "SDPA" in plan.step("flash-attn").why


def test_state_json_collects_the_host_records():
    s = spec(manager="conda")
    facts = make_facts()
    plan = bp.build_plan(facts, s, host="h", accept_tos=True)
    after = finished(plan, facts, only={"conda"})
    doc = bp.state_json(bp.build_plan(after, s, host="h", accept_tos=True), {"steps": {"old": {"rc": 0}}}, now=5.0)
    assert doc["env"] == "default" and doc["updated"] == 5.0
    assert set(doc["steps"]) == {"old", "conda"} and doc["steps"]["conda"]["rc"] == 0


# --- env spec ----------------------------------------------------------------------------------


def test_repo_env_specs_load():
    d = envspec.load(REPO, "default")
    assert (d.manager, d.python, d.torch.version, d.flash_attn.wanted, d.flash_attn.required) == (
        "conda",
        "3.11",
        "auto",
        True,
        False,
    )
    v = envspec.load(REPO, "venv")
    assert (v.manager, v.python, v.system_site_packages, v.torch.version) == ("venv", "system", True, "preinstalled")
    m = envspec.load(REPO, "mdlm-seed")
    assert (m.python, m.torch.version, m.flash_attn.version) == ("3.9", "2.2", "2.5.6")
    assert d.digest() != m.digest()


@pytest.mark.parametrize(
    "data,words",
    [
        ({"manager": "pip"}, "key 'manager': expected one of conda, miniforge, venv, got 'pip'"),
        ({"python": 3.1}, "unquoted 3.10 reads as 3.1"),
        ({"torch": {"version": "latest"}}, "key 'torch.version': expected auto, none, preinstalled"),
        ({"torch": {"cuda": "12.1"}}, "key 'torch.cuda': expected auto, cpu or a variant such as cu121"),
        ({"flash_attn": {"wanted": "yes"}}, "key 'flash_attn.wanted': expected true or false, got 'yes'"),
        ({"packages": ["torch==2.2"]}, "no torch/flash-attn here"),
        ({"packages": "transformers"}, "key 'packages': expected a list of strings, got 'transformers'"),
        ({"conda": {"installer_sha256": "abc"}}, "key 'conda.installer_sha256': expected 64 hex digits"),
        ({"conda": {"prefix": "relative/path"}}, "an absolute path without spaces"),
        ({"manager": "venv", "torch": {"version": "preinstalled"}}, "system_site_packages: true"),
        ({"colour": "red"}, "unknown key 'colour' (known keys here: manager, python, packages,"),
        ({"torch": {"colour": "red"}}, "unknown key 'torch.colour' (known keys here: version, cuda)"),
        ({"torch": "auto"}, "key 'torch': expected a mapping, got 'auto'"),
        ({"conda": {"prefix": "/opt/x\ny"}}, "key 'conda.prefix': expected no control characters"),
        ({"timeouts": {"install": 0}}, "key 'timeouts.install': expected a positive number (minutes), got 0.0"),
        ({"timeouts": {"install": "1h"}}, "key 'timeouts.install': expected a number, got '1h'"),
    ],
)
def test_env_spec_errors_name_file_key_and_expectation(data, words):
    with pytest.raises(OrchError) as exc:
        envspec.parse(data, "x", "configs/envs/x.yaml")
    assert exc.value.code == ExitCode.CONFIG
    assert str(exc.value).startswith("configs/envs/x.yaml: ")
    assert words in str(exc.value)


def test_env_spec_empty_sections_and_defaults():
    """`torch:` with every line commented out is the defaults; a venv's python defaults to system."""
    s = envspec.parse({"manager": "venv", "torch": None, "packages": None}, "v")
    assert (s.python, s.torch.version, s.packages, s.path) == ("system", "auto", [], "configs/envs/v.yaml")
    c = envspec.parse({"python": 3.12, "packages": [" einops "], "conda": {"installer_sha256": "AB" * 32}}, "c")
    assert (c.python, c.packages, c.conda.installer_sha256) == ("3.12", ["einops"], "ab" * 32)


def test_missing_env_spec_lists_the_known_ones(tmp_path):
    (tmp_path / "configs" / "envs").mkdir(parents=True)
    (tmp_path / "configs" / "envs" / "a.yaml").write_text("manager: venv\n")
    with pytest.raises(OrchError) as exc:
        envspec.load(tmp_path, "b")
    assert "no env spec configs/envs/b.yaml" in exc.value.message and "a" in exc.value.hint


def test_preinstalled_torch_missing_from_the_base_python_is_blocked_in_the_plan():
    """`torch: preinstalled` on a python without torch: the dry run says so at the torch
    step (not a pip build-isolation story after the env was made)."""
    facts = make_facts(gpus=(), pythons=[("python3", "/usr/bin/python3", "3.11.2", True, None)])
    plan = bp.build_plan(facts, envspec.load(REPO, "venv"), host="h")
    torch = plan.step("torch")
    assert plan.step("env").state == "todo" and torch.state == "blocked" and torch.blocked_code == "host"
    assert torch.why == (
        "torch is missing from /usr/bin/python3 (the python the venv is made from), "
        "and torch: preinstalled installs none"
    )
    assert "install torch into /usr/bin/python3" in torch.hint and "torch.version: auto" in torch.hint
    assert "build isolation" not in torch.why + torch.hint
    assert [plan.step(n).state for n in ("packages", "verify")] == ["blocked", "blocked"]
    # the env exists now (made by the env step) and still has no torch: same verdict, about the env
    made = with_env_python(facts, plan.env_python, torch=None)
    torch = bp.build_plan(made, envspec.load(REPO, "venv"), host="h").step("torch")
    assert torch.state == "blocked" and f"torch is missing from the env's python ({plan.env_python})" in torch.why
    assert "which sees the packages of /usr/bin/python3" in torch.why
    # a venv's python as the base: new venvs see its base interpreter's packages, not probed
    venv_base = make_facts(gpus=(), pythons=[("python3", "/home/u/v/bin/python3", "3.11.2", True, None)])
    venv_base.pythons[0].prefix, venv_base.pythons[0].base_prefix = "/home/u/v", "/usr"
    assert bp.build_plan(venv_base, envspec.load(REPO, "venv"), host="h").step("torch").state == "todo"
    # with torch in the base python it is not blocked
    ok = make_facts(gpus=(), pythons=[("python3", "/usr/bin/python3", "3.11.2", True, "2.13.0+cpu")])
    assert bp.build_plan(ok, envspec.load(REPO, "venv"), host="h").step("torch").state == "todo"


def test_a_failed_torch_import_is_diagnosed_as_missing_torch_not_build_isolation():
    from orchestrator.provision import flashattn

    log = (
        "Traceback (most recent call last):\n  File \"<string>\", line 1\nModuleNotFoundError: No module named 'torch'"
    )
    ((what, fix),) = flashattn.diagnose_log(log, 1, "torch")
    assert what == "torch is not installed in the env's python" and "torch.version: auto" in fix
    assert "build isolation" in flashattn.diagnose_log(log, 1, "flash-attn")[0][0]


@pytest.mark.parametrize("gpu", [("NVIDIA A100-SXM4-80GB", "8.0", 81920), ("NVIDIA H100 80GB HBM3", "9.0", 81559)])
def test_what_the_readme_says_each_env_gives_on_cuda_12_4(gpu):
    """README, 'Which env': a driver for CUDA 12.4 with an A100 or H100."""
    facts = make_facts(
        gpus=[gpu],
        cuda="12.4",
        driver="550.54.14",
        glibc="2.35",
        pythons=[("python3", "/usr/bin/python3", "3.10.12", True, None)],
    )
    default = bp.build_plan(facts, envspec.load(REPO, "default"), host="nigel", accept_tos=True)
    assert (default.spec.python, default.torch.requirement, default.torch.variant) == ("3.11", "torch==2.6.*", "cu124")
    assert (default.flash_attn.kind, default.flash_attn.version) == ("wheel", "2.8.3.post1")
    seed = bp.build_plan(facts, envspec.load(REPO, "mdlm-seed"), host="nigel", accept_tos=True)
    assert (seed.spec.python, seed.torch.requirement, seed.torch.variant) == ("3.9", "torch==2.2.*", "cu121")
    assert (seed.flash_attn.kind, seed.flash_attn.version) == ("wheel", "2.5.6")
    assert "cu122torch2.2cxx11abiFALSE-cp39" in seed.flash_attn.wheel
    # without the ToS flag both stop at the conda step
    for env in ("default", "mdlm-seed"):
        assert bp.build_plan(facts, envspec.load(REPO, env), host="nigel").step("conda").state == "blocked"


@pytest.mark.parametrize(
    "result",
    [
        {"ok": True, "gpus": ["H200"], "checks": ["x"]},
        {"ok": False, "gpus": [{"name": 5, "capability": 9.0}], "checks": {"sdpa": "ok", 3: {"status": 1}}},
        {"gpus": "none", "checks": {"bf16": {"status": "ok", "rel_err": 0.001}}},
    ],
)
def test_a_verify_result_of_any_shape_renders_without_a_traceback(result):
    """`orch hosts show` and bootstrap render what the host's verify.py wrote."""
    import io

    from orchestrator import output
    from orchestrator.commands.bootstrap import render_verify

    out = output.console(file=io.StringIO())
    render_verify(result, out)
    text = out.file.getvalue()
    assert text.startswith("verify ")
