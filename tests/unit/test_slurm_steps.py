"""Bootstrap steps on a `scheduler: slurm` host, without a cluster: which steps become batch
jobs, what is submitted (argv items, never pasted shell), how a poll reads squeue, the step
runner following one; and GPU types from sinfo's gres feeding flash-attn's arch choice.

The shell programs run for real in a local bash, with stand-in `sbatch` / `squeue` on PATH
that record their argv; the real Slurm is in tests/integration/test_slurm_bootstrap.py.
"""

import json
import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from hostfixtures import make_facts, with_env_python

from orchestrator import backends
from orchestrator.backends import slurm_facts, slurm_steps
from orchestrator.backends.slurm import SlurmBackend
from orchestrator.backends.slurm_steps import SlurmSteps
from orchestrator.config import envspec
from orchestrator.config.slurm import SlurmOptions
from orchestrator.errors import OrchError
from orchestrator.provision import flashattn, gpu
from orchestrator.provision import plan as bp
from orchestrator.provision import steps as runner_mod
from orchestrator.provision.progress import Progress

HOSTILE = "--comment=$(touch /tmp/orch-pwned); `id` 'x\" y"


class LocalBash:
    """A transport that runs the command in a local bash, with stand-in tools first on PATH."""

    def __init__(self, bin_dir):
        self.bin = bin_dir
        self.commands = []

    def run(self, command, check=True, timeout=None):
        self.commands.append(command)
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": str(self.bin)}
        proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=30)
        return SimpleNamespace(rc=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)


def tool(bin_dir, name, body):
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


@pytest.fixture
def host(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # sbatch records each argv item on its own line, then answers like --parsable
    tool(bin_dir, "sbatch", f'printf "%s\\n" "$@" > {tmp_path}/sbatch.argv\necho "4242;cluster"\n')
    tool(bin_dir, "squeue", f'printf "%s\\n" "$@" > {tmp_path}/squeue.argv\ncat {tmp_path}/squeue.out\n')
    layout = bp.Layout(str(tmp_path / "w"), "default")
    opts = SlurmOptions(partition="gpu", gres="gpu:1", time="01:00:00", modules=["cuda/12.4"], extra_args=[HOSTILE])
    t = LocalBash(bin_dir)
    return SimpleNamespace(tmp=tmp_path, t=t, layout=layout, steps=SlurmSteps(t, layout, opts))


def step(name, argv=("sh", "-c", "echo built"), detached=False):
    return bp.Step(name, name, argv=list(argv), fingerprint="f1", detached=detached, timeout_s=60)


class FakeLock:
    POLL_SNIPPET = 'if [ -n "${LOCK:-}" ]; then echo "@@lock ok"; fi'

    def poll_args(self):
        return ["/w/lock", "TOKEN"]


def test_verify_and_a_flash_attn_source_build_are_jobs_downloads_stay_on_the_login_node(host):
    s = host.steps
    verify = step("verify")
    build = step("flash-attn", ["bash", "build_flash_attn.sh", "--source", "--version", "2.8.3"], detached=True)
    wheel = step("flash-attn", ["bash", "build_flash_attn.sh", "--wheel-url", "https://x/y.whl"], detached=True)
    pkgs = step("packages", ["pip", "install", "einops"], detached=True)
    assert s.must_detach(verify) and s.must_detach(build) and not s.must_detach(pkgs)
    assert s.describe(verify) == f"Slurm job orch-bootstrap-verify (output {host.layout.logs}/verify.slurm.out)"
    assert s.describe(wheel).startswith("tmux session orch-bootstrap-flash-attn")
    assert s.describe(pkgs, socket=True).startswith("tmux session orch-bootstrap-packages (socket ")
    # a batch job keeps the environment sbatch gives it (PATH + the modules' additions)
    assert s.path_file(verify) == "" and s.path_file(pkgs).endswith("/logs/packages.path")
    assert s.stop_hint(verify) == f"scancel $(cat {host.layout.logs}/verify.jobid)"
    assert backends.get("tmux").detached_steps(None, host.layout).__class__.__name__ == "TmuxSteps"
    assert isinstance(backends.get("slurm").detached_steps(None, host.layout), SlurmSteps)


def test_the_dry_run_says_which_steps_will_be_slurm_jobs():
    from orchestrator.commands.bootstrap import step_mode

    verify = step("verify", detached=True)
    pkgs = step("packages", ["pip", "install", "einops"], detached=True)
    assert step_mode(verify, backends.get("slurm")) == "a Slurm batch job on a compute node"
    assert step_mode(pkgs, backends.get("slurm")) == "detached in tmux"  # downloads stay on the login node
    assert step_mode(verify, backends.get("tmux")) == "detached in tmux"
    assert step_mode(step("probe"), backends.get("tmux")) == "attached"


def test_launch_submits_argv_items_and_a_script_that_loads_modules_then_execs_the_step(host):
    argv = ["bash", "/w/run_step.sh", "verify", "f1", "/w/logs", "--", "sh", "-c", "echo $HOME; echo 'built'"]
    host.steps.launch(step("verify"), argv, "cluster")
    assert host.steps.job_ids == {"verify": "4242"}
    sbatch = (host.tmp / "sbatch.argv").read_text().splitlines()
    logs = host.layout.logs
    assert sbatch == [
        "--parsable",
        "--job-name=orch-bootstrap-verify",
        f"--output={logs}/verify.slurm.out",
        "--open-mode=append",
        f"--chdir={host.layout.root}",
        "--no-requeue",
        "--partition=gpu",  # the host's slurm: options, after orch's own
        "--time=01:00:00",
        "--gres=gpu:1",
        HOSTILE,  # one argv item, as written: never run by a shell
        f"{logs}/verify.sbatch.sh",
    ]
    assert not (host.tmp / "orch-pwned").exists()
    script = (host.tmp / "w" / "bootstrap" / "logs" / "verify.sbatch.sh").read_text()
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash" and "module load cuda/12.4 ||" in script
    assert lines[-1] == "exec " + " ".join(shlex.quote(a) for a in argv)
    assert (host.tmp / "w" / "bootstrap" / "logs" / "verify.jobid").read_text() == "4242\n"


def test_launch_removes_an_old_result_so_a_queued_job_is_not_taken_for_finished(host):
    logs = host.tmp / "w" / "bootstrap" / "logs"
    logs.mkdir(parents=True)
    (logs / "verify.result").write_text('{"rc": 1}')
    (logs / "verify.started").write_text('{"started": 1}')
    host.steps.launch(step("verify"), ["true"], "cluster")
    assert not (logs / "verify.result").exists() and not (logs / "verify.started").exists()


def test_a_refused_submission_is_one_error_with_sbatch_s_words(host):
    tool(host.t.bin, "sbatch", 'echo "sbatch: error: invalid partition specified: nosuch" >&2\nexit 1\n')
    with pytest.raises(OrchError) as err:
        host.steps.launch(step("verify"), ["true"], "cluster")
    assert "could not submit step verify to Slurm on cluster: invalid partition specified: nosuch" in err.value.message
    assert "slurm:" in err.value.hint


@pytest.mark.parametrize(
    "squeue_out, alive, words",
    [
        ("PENDING|Resources\n", True, "Slurm job 4242: PENDING (Resources)"),
        ("RUNNING|None\n", True, "Slurm job 4242: RUNNING"),
        ("COMPLETED|None\n", False, "Slurm job 4242: COMPLETED"),
        ("", False, "Slurm job 4242: not in the queue"),  # forgotten after MinJobAge
    ],
)
def test_a_poll_reads_squeue_the_step_files_and_the_log(host, squeue_out, alive, words):
    logs = host.tmp / "w" / "bootstrap" / "logs"
    logs.mkdir(parents=True)
    (logs / "verify.jobid").write_text("4242\n")
    (logs / "verify.started").write_text('{"started": 100}\n')
    (logs / "verify.log").write_text("line one\nline two\n")
    (host.tmp / "squeue.out").write_text(squeue_out)
    info, chunk = host.steps.poll(step("verify"), 5, FakeLock())
    assert info["alive"] is alive and info["queue"] == words
    assert info["started"] == {"started": 100} and info["result"] is None and info["lock"] == "ok"
    assert chunk == "one\nline two\n" and info["chunk"] == len(chunk)
    assert (host.tmp / "squeue.argv").read_text().split() == ["-h", "-t", "all", "-j", "4242", "-o", "%T|%r"]


def test_squeue_failing_is_not_the_end_of_the_job_but_a_forgotten_id_is(host):
    logs = host.tmp / "w" / "bootstrap" / "logs"
    logs.mkdir(parents=True)
    (logs / "verify.jobid").write_text("4242\n")
    tool(host.t.bin, "squeue", 'echo "slurm_load_jobs error: Socket timed out on send/recv operation" >&2; exit 1\n')
    assert host.steps.poll(step("verify"), 0, FakeLock())[0]["alive"] is True
    tool(host.t.bin, "squeue", 'echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1\n')
    assert host.steps.poll(step("verify"), 0, FakeLock())[0]["alive"] is False


def test_log_tail_falls_back_to_the_batch_output_when_the_step_never_ran(host):
    logs = host.tmp / "w" / "bootstrap" / "logs"
    logs.mkdir(parents=True)
    (logs / "verify.slurm.out").write_text("orch: module load cuda/12.4 failed\n")
    assert "module load cuda/12.4 failed" in host.steps.log_tail(step("verify"))
    (logs / "verify.log").write_text("[orch] step verify started\n")
    assert host.steps.log_tail(step("verify")) == "[orch] step verify started\n"


class Recorder(Progress):
    def __init__(self):
        self.events = []

    def step_detached(self, step, where, log):
        self.events.append(("detached", where))

    def note(self, text):
        self.events.append(("note", text))

    def step_done(self, step, seconds):
        self.events.append(("done", step.name))


class ScriptedJobs(SlurmSteps):
    """SlurmSteps whose host answers come from a script of polls (the Runner's side only)."""

    def __init__(self, layout, polls):
        super().__init__(None, layout, SlurmOptions())
        self.polls, self.launched = list(polls), []

    def launch(self, step, argv, host):
        self.launched.append(argv)
        self.job_ids[step.name] = "7"

    def poll(self, step, offset, lock):
        return self.polls.pop(0)

    def log_tail(self, step):
        return "log"


def test_the_runner_sends_verify_to_a_job_and_says_when_its_queue_state_changes(monkeypatch):
    monkeypatch.setattr(runner_mod, "POLL_S", 0)
    layout = bp.Layout("/w", "default")
    q = "Slurm job 7: PENDING (Priority)"
    jobs = ScriptedJobs(
        layout,
        [
            ({"alive": True, "queue": q, "now": 10}, ""),
            ({"alive": True, "queue": q, "now": 11}, ""),
            (
                {"alive": True, "queue": "Slurm job 7: RUNNING", "started": {"started": 12}, "now": 13, "chunk": 6},
                "built\n",
            ),
            ({"alive": False, "result": {"rc": 0, "started": 12, "ended": 14}, "now": 14}, ""),
        ],
    )
    progress = Recorder()
    lock = SimpleNamespace(POLL_SNIPPET="", poll_args=lambda: [], with_heartbeat=lambda a: a)
    runner = runner_mod.Runner(object(), SimpleNamespace(layout=layout), "cluster", progress, lock=lock, detached=jobs)
    rc, log = runner.run_step(step("verify"))  # the plan runs verify attached; on Slurm it is a job
    assert rc == 0 and log == "log"
    assert jobs.launched and "--path-file" not in jobs.launched[0]
    assert progress.events == [
        ("detached", "Slurm job orch-bootstrap-verify (id 7, output /w/bootstrap/logs/verify.slurm.out)"),
        ("note", "step verify: Slurm job 7: PENDING (Priority)"),
        ("note", "step verify: Slurm job 7: RUNNING"),
        ("done", "verify"),
    ]


def test_queue_words_keep_host_text_printable():
    assert slurm_steps.queue_words("9", "PENDING|Reason\x1b[31m") == "Slurm job 9: PENDING (Reason[31m)"


def test_the_probe_finds_live_bootstrap_jobs_of_this_workdir_only():
    out = "orch-bootstrap-verify|/scratch/u/orch/bootstrap\norch-bootstrap-verify|/scratch/u/other/bootstrap\nx\n"
    assert slurm_facts.parse_slurm_jobs(out, "/scratch/u/orch/bootstrap") == ["orch-bootstrap-verify"]
    facts = make_facts()
    facts.cluster[slurm_facts.JOBS] = ["orch-bootstrap-verify"]
    plan = bp.build_plan(facts, envspec.parse({"manager": "venv"}, "v"), host="h")
    assert plan.step("verify").state == "running" and "Slurm job" in plan.step("verify").why


# --- GPU types from sinfo's gres ----------------------------------------------------------


def _slurm(partition):
    """The Slurm backend of a host whose `slurm.partition` is PARTITION (None: a tmux host)."""
    return None if partition is None else SlurmBackend(SlurmOptions(partition=partition))


def _caps(gres_fields):
    """The compute capabilities bootstrap reads from sinfo's gres column (one field a partition)."""
    cluster = {slurm_facts.PARTITIONS: [{"partition": f"p{i}", "gres": g} for i, g in enumerate(gres_fields)]}
    return gpu.caps_from_types(SlurmBackend().cluster_gpus(cluster))


@pytest.mark.parametrize(
    "gres, caps, notes, archs",
    [
        (["gpu:a100:4(S:0-1)", "gpu:h100:8"], [(8, 0), (9, 0)], 0, "80;90"),
        (["gpu:h200:4,gpu:v100:2"], [(7, 0), (9, 0)], 0, "90"),
        (["gpu:a40:2", "gpu:a10:1", "gpu:l40s:4", "gpu:l40:4"], [(8, 6), (8, 6), (8, 9), (8, 9)], 0, "80"),
        (["gpu:nvidia_a100-sxm4-80gb:4"], [(8, 0)], 0, "80"),
        (["gpu:b200:8"], [(10, 0)], 0, "100"),
        (["(null)"], [], 0, None),
        (["gpu:0"], [], 0, None),
        (["gpu:4"], [], 1, None),  # no type: unknown capability, said
        (["gpu:mystery9000:2"], [], 1, None),
        (["gpu:fake:2(S:0)"], [], 1, None),  # the test bed's
        # site types orch must know (Alliance's v100l / a100l; lab clusters' GeForce and RTX cards)
        (["gpu:v100l:4", "gpu:a100l:4"], [(7, 0), (8, 0)], 0, "80"),
        (["gpu:rtx2080ti:8,gpu:gtx1080ti:4"], [(6, 1), (7, 5)], 0, None),
        (["gpu:a5000:4", "gpu:a6000:4", "gpu:rtxa6000:2", "gpu:rtx3090:8"], [(8, 6)] * 4, 0, "80"),
        (["gpu:rtx_6000:4", "gpu:titanrtx:2", "gpu:2080ti:4"], [(7, 5)] * 3, 0, None),
        (["gpu:rtx_6000_ada:4"], [(8, 9)], 0, "80"),
        (["gpu:a100_3g.40gb:2"], [(8, 0)], 0, "80"),  # a MIG slice after its GPU's name
    ],
)
def test_gres_gpu_types_map_to_compute_capabilities(gres, caps, notes, archs):
    found = _caps(gres)
    assert found.caps == caps and len(found.notes) == notes
    assert found.present == bool(caps or notes)
    if archs:  # (sm86/sm89 run flash-attn's sm80 code)
        assert flashattn.cuda_archs(found.caps) == archs


@pytest.mark.parametrize(
    "gres, types",
    [
        ("gpu:a100:4(S:0-1),gpu:v100:2", ["a100", "v100"]),
        ("gpu:4", [""]),
        ("gpu:4(S:0),shard:8", [""]),
        ("gpu:3g.40gb:2", ["3g.40gb"]),  # a MIG profile: a type, not an untyped gpu:3
        ("gpu:nvidia_h100_80gb_hbm3_1g.10gb:7(S:0)", ["nvidia_h100_80gb_hbm3_1g.10gb"]),
        ("gpumem:40G,gpu:l40s:2", ["l40s"]),
        ("gpu:0,gpu:h100:0", []),
        ("(null)", []),
    ],
)
def test_gres_strings_give_their_gpu_types(gres, types):
    assert slurm_facts.gres_gpu_types(gres) == types


def test_a_mig_slice_named_only_by_its_profile_is_said_as_one():
    found = _caps(["gpu:3g.40gb:2"])
    assert found.caps == [] and found.unknown == ["3g.40gb"] and found.present
    assert "MIG slice" in found.notes[0] and "without a type" not in found.notes[0]


SINFO = [
    {
        "partition": "gpu",
        "default": "yes",
        "available": "up",
        "time_limit": "1-00:00:00",
        "nodes": "4",
        "gres": "gpu:a100:4",
    },
    {
        "partition": "big",
        "default": "",
        "available": "up",
        "time_limit": "1-00:00:00",
        "nodes": "2",
        "gres": "gpu:h100:8",
    },
    {"partition": "cpu", "default": "", "available": "up", "time_limit": "1:00:00", "nodes": "9", "gres": "(null)"},
    {"partition": "odd", "default": "", "available": "up", "time_limit": "1:00:00", "nodes": "1", "gres": "gpu:zz9:1"},
]


def _login_node_facts():
    """A login node: no nvidia-smi, a CUDA toolkit, a venv with torch 2.8 cu128 already there."""
    facts = make_facts(gpu_kind="missing", nvcc="12.8", nvcc_path="/usr/local/cuda/bin/nvcc")
    facts.cluster[slurm_facts.PARTITIONS] = SINFO
    with_env_python(
        facts, "/home/u/orch/envs/default/bin/python", version="3.12.3", torch="2.8.0+cu128", torch_cuda="12.8"
    )
    return facts


@pytest.mark.parametrize(
    "partition, archs",
    [("", "80;90"), ("gpu", "80"), ("big", "90"), ("gpu,big", "80;90")],
)
def test_a_slurm_login_node_without_nvidia_smi_builds_for_its_partitions_gpus(partition, archs):
    s = envspec.parse(
        {"manager": "venv", "torch": {"version": "2.8.0", "cuda": "cu128"}, "flash_attn": {"version": "2.8.3"}},
        "default",
    )
    plan = bp.build_plan(_login_node_facts(), s, host="cluster", backend=_slurm(partition))
    assert plan.flash_attn.kind == "source", plan.flash_attn.reason
    assert plan.flash_attn.env["FLASH_ATTN_CUDA_ARCHS"] == archs
    assert any("GPU types from sinfo" in w for w in plan.warnings)


def test_a_login_node_without_nvidia_smi_gets_a_cuda_torch_for_its_partitions_gpus():
    """torch: auto on a login node: the GPUs are sinfo's, the driver unseen; a CPU build
    would only fail later, in verify on the compute node."""
    facts = make_facts(gpu_kind="missing", nvcc="12.8", nvcc_path="/usr/local/cuda/bin/nvcc")
    facts.cluster[slurm_facts.PARTITIONS] = SINFO
    s = envspec.parse({"manager": "venv", "flash_attn": {"wanted": False}}, "default")
    plan = bp.build_plan(facts, s, host="cluster", backend=_slurm("gpu"))
    assert (plan.torch.version, plan.torch.variant) == ("2.11", "cu126"), plan.torch
    assert any("driver is not visible" in n for n in plan.torch.notes)
    torch_step = next(st for st in plan.steps if st.name == "torch")
    assert "https://download.pytorch.org/whl/cu126" in torch_step.argv
    assert "--expect-cuda" in next(st for st in plan.steps if st.name == "verify").argv  # run on a GPU node
    cpu_only = bp.build_plan(facts, s, host="cluster", backend=_slurm("cpu"))  # no GPU gres there
    assert cpu_only.torch.variant == "cpu"


@pytest.mark.parametrize("gres", ["gpu:fake:2", "gpu:4", "gpu:3g.40gb:2", "gpu:mystery9000:2(S:0)"])
def test_gpus_of_unknown_capability_still_get_a_cuda_torch_and_only_lose_flash_attn(gres):
    """GPUs in the gres are GPUs, whatever orch knows of their type: a CPU torch would run
    every job on the CPU.  Only flash-attn, which needs the capability, is skipped."""
    facts = make_facts(gpu_kind="missing")
    facts.cluster[slurm_facts.PARTITIONS] = [{**SINFO[0], "gres": gres}]
    s = envspec.parse({"manager": "venv"}, "default")
    plan = bp.build_plan(facts, s, host="cluster", backend=_slurm("gpu"))
    assert (plan.torch.version, plan.torch.variant) == ("2.11", "cu126"), plan.torch
    notes = " ".join(plan.torch.notes)
    assert "driver is not visible" in notes and "no known compute capability: cu126 is assumed" in notes
    assert "Blackwell" in notes and "torch.cuda" in notes  # what is assumed, and how to pin another
    assert "--expect-cuda" in next(st for st in plan.steps if st.name == "verify").argv
    assert plan.flash_attn.kind == "unsupported" and "known compute capability" in plan.flash_attn.reason
    assert any("GPU types from sinfo" in w and "sm_?" in w for w in plan.warnings), plan.warnings
    assert any("flash-attn cannot target it" in w for w in plan.warnings), plan.warnings
    pinned = envspec.parse({"manager": "venv", "torch": {"cuda": "cu128"}}, "default")
    plan = bp.build_plan(facts, pinned, host="cluster", backend=_slurm("gpu"))
    assert plan.torch.variant == "cu128" and not plan.torch.blocked


def test_a_known_type_beside_an_unknown_one_still_sets_the_cuda_build():
    facts = make_facts(gpu_kind="missing")
    facts.cluster[slurm_facts.PARTITIONS] = [{**SINFO[0], "gres": "gpu:b200:8,gpu:zz9:1"}]
    plan = bp.build_plan(facts, envspec.parse({"manager": "venv"}, "default"), host="cluster", backend=_slurm(""))
    assert plan.torch.variant == "cu128", plan.torch  # Blackwell: cu128+, as for b200 alone
    assert any("'zz9'" in n and "cu128 is assumed" in n for n in plan.torch.notes)
    assert any("b200 sm_100, zz9 sm_?" in w for w in plan.warnings), plan.warnings


def test_a_source_build_on_slurm_fetches_on_the_login_node_and_builds_offline_as_a_job():
    """Compute nodes often have no internet: the downloads are a login-node step before the
    build job, and the build installs from the wheelhouse with --no-index."""
    s = envspec.parse(
        {"manager": "venv", "torch": {"version": "2.8.0", "cuda": "cu128"}, "flash_attn": {"version": "2.8.3"}},
        "default",
    )
    plan = bp.build_plan(_login_node_facts(), s, host="cluster", backend=_slurm("gpu"))
    names = [st.name for st in plan.steps]
    assert names.index("flash-attn-fetch") == names.index("flash-attn") - 1
    fetch, build = (next(st for st in plan.steps if st.name == n) for n in ("flash-attn-fetch", "flash-attn"))
    house = fetch.argv[fetch.argv.index("--fetch-only") + 1]
    assert house.startswith(plan.layout.root) and build.argv[build.argv.index("--wheelhouse") + 1] == house
    assert "--fetch-only" not in build.argv and fetch.state == "todo" and fetch.detached
    assert not slurm_steps.runs_as_job(fetch) and slurm_steps.runs_as_job(build)
    assert fetch.fingerprint != build.fingerprint
    tmux_host = bp.build_plan(_login_node_facts(), s, host="box")  # not Slurm: the build downloads itself
    assert "flash-attn-fetch" not in [st.name for st in tmux_host.steps]


def test_a_login_node_without_tmux_runs_the_batch_job_steps_and_blocks_only_login_node_ones():
    s = envspec.parse(
        {"manager": "venv", "torch": {"version": "2.8.0", "cuda": "cu128"}, "flash_attn": {"version": "2.8.3"}},
        "default",
    )
    facts = _login_node_facts()
    before = bp.build_plan(facts, s, host="cluster", backend=_slurm("gpu"))
    done = {
        st.name: {"fingerprint": st.fingerprint, "rc": 0}
        for st in before.steps[: before.steps.index(next(st for st in before.steps if st.name == "flash-attn-fetch"))]
    }
    facts.state = {"steps": done}  # the env and torch are there
    facts.tools = {**facts.tools, "tmux": False}
    slurm = _slurm("gpu")
    plan = bp.build_plan(facts, s, host="cluster", backend=slurm)
    fetch = next(st for st in plan.steps if st.name == "flash-attn-fetch")
    assert fetch.state == "blocked" and "tmux is missing" in fetch.why, fetch  # a login-node download
    done["flash-attn-fetch"] = {"fingerprint": fetch.fingerprint, "rc": 0}  # fetched earlier
    plan = bp.build_plan(facts, s, host="cluster", backend=slurm)
    build = next(st for st in plan.steps if st.name == "flash-attn")
    assert build.state == "todo" and slurm.runs_as_job(build)  # a batch job: no tmux needed


def test_without_gpu_gres_or_off_slurm_flash_attn_falls_back_as_before():
    s = envspec.parse(
        {"manager": "venv", "torch": {"version": "2.8.0", "cuda": "cu128"}, "flash_attn": {"version": "2.8.3"}},
        "default",
    )
    for partition in (None, "cpu"):  # None: a tmux host with sinfo on it: its jobs run on the probed machine
        plan = bp.build_plan(_login_node_facts(), s, host="cluster", backend=_slurm(partition))
        assert plan.flash_attn.kind == "unsupported" and "no NVIDIA GPU" in plan.flash_attn.reason
    plan = bp.build_plan(_login_node_facts(), s, host="cluster", backend=_slurm("odd"))
    assert plan.flash_attn.kind == "unsupported"
    assert any("'zz9' has no known compute capability: flash-attn cannot target it" in w for w in plan.warnings)


def test_slurm_steps_result_file_is_json_run_step_writes(host):
    # the poll's @@result line is run_step.sh's one-line JSON
    logs = host.tmp / "w" / "bootstrap" / "logs"
    logs.mkdir(parents=True)
    (logs / "verify.result").write_text(json.dumps({"rc": 3, "started": 1, "ended": 2}) + "\n")
    (host.tmp / "squeue.out").write_text("")
    info, _ = host.steps.poll(step("verify"), 0, FakeLock())
    assert info["result"] == {"rc": 3, "started": 1, "ended": 2}


def test_a_cpu_torch_on_a_partition_with_gpus_fails_verify_and_says_what_fixes_it():
    """The `venv` env takes the host's preinstalled torch, here a CPU build, while the
    partition's gres has GPUs: verify must fail (not "complete, verify ok"), and the fix it
    names is another env, since bootstrapping this one again reinstalls the same CPU torch."""
    facts = make_facts(gpu_kind="missing", pythons=[("python3", "/usr/bin/python3", "3.11.2", True, "2.13.0+cpu")])
    facts.cluster[slurm_facts.PARTITIONS] = SINFO
    repo = Path(__file__).resolve().parents[2]
    plan = bp.build_plan(facts, envspec.load(repo, "venv"), host="cluster", backend=_slurm("gpu"))
    verify = next(st for st in plan.steps if st.name == "verify")
    assert "--expect-cuda" in verify.argv
    assert "`orch bootstrap cluster --env default`" in verify.hint
    assert any("torch 2.13.0 of env venv is a CPU build (no CUDA) but this host has GPUs" in w for w in plan.warnings)
    # A CPU torch the env spec asks for is not an error.
    cpu = envspec.parse({"manager": "venv", "python": "system", "torch": {"cuda": "cpu"}}, "cpu")
    plan = bp.build_plan(facts, cpu, host="cluster", backend=_slurm("gpu"))
    assert "--expect-cuda" not in next(st for st in plan.steps if st.name == "verify").argv


def test_a_login_node_without_nvidia_smi_is_not_told_to_install_the_driver():
    """bootstrap --dry-run on a Slurm login node: its GPU facts come from sinfo (the plan's
    warnings say so), so no 'install the NVIDIA driver' warning before that."""
    import io

    from rich.console import Console

    from orchestrator.commands.bootstrap import render_facts

    facts = make_facts(gpu_kind="missing")
    for login, shown in ((True, False), (False, True)):
        out = io.StringIO()
        render_facts(facts, "cluster", Console(file=out, width=200), login_node=login)
        assert ("install the NVIDIA driver" in out.getvalue()) is shown, out.getvalue()
