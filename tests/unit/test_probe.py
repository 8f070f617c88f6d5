"""The host probe: the real script run here with nvidia-smi/nvcc shims replaying the H200
fixtures (and the documented failures), and its pure parsers on raw outputs."""

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hostfixtures import FIXTURES, run_probe_locally, write_gpu_shims

from orchestrator.provision import probe


@pytest.fixture(scope="module")
def shims(tmp_path_factory):
    root = tmp_path_factory.mktemp("shims")
    return {
        mode: write_gpu_shims(root / mode, mode) for mode in ("ok", "old-driver", "no-driver", "mismatch", "no-devices")
    }


def test_probe_on_the_h200_replay(shims, tmp_path):
    workdir = str(tmp_path / "work")
    out = run_probe_locally(workdir, [shims["ok"]])
    facts = probe.parse_probe(out, workdir)
    assert facts.warnings == []
    assert facts.gpu.ok
    (g,) = facts.gpu.gpus
    assert (g.name, g.compute_cap, g.memory_total_mib) == ("NVIDIA H200", "9.0", 143771)
    assert facts.gpu.driver_version == "580.159.04" and facts.gpu.cuda_version == "13.0"
    assert facts.nvcc_version == "13.0" and facts.nvcc_path == str(shims["ok"] / "nvcc")
    # and the machine this runs on: real values, sane ranges
    assert facts.arch and facts.kernel.startswith("Linux")
    assert facts.cpus >= 1 and facts.mem_total_gb > 0 and facts.disk_free_gb > 0
    assert facts.glibc.count(".") == 1
    assert facts.tools["bash"] and facts.workdir == workdir and not facts.workdir_exists
    assert facts.state == {} and facts.results == {} and facts.verify is None and facts.tmux_sessions == []


def test_probe_old_driver_retries_without_compute_cap(shims, tmp_path):
    out = run_probe_locally(str(tmp_path), [shims["old-driver"]])
    sections = probe.parse_sections(out)
    assert "nvidia-smi-query-nocc" in sections and "nvidia-smi-plain" in sections
    facts = probe.parse_probe(out, str(tmp_path))
    assert facts.gpu.ok and facts.gpu.gpus[0].compute_cap_source == "name table"
    assert facts.gpu.cuda_version == "13.0"  # from the plain header: the XML had no <cuda_version>


@pytest.mark.parametrize(
    "mode,kind", [("no-driver", "no_driver"), ("mismatch", "mismatch"), ("no-devices", "no_devices")]
)
def test_probe_gpu_failures(shims, tmp_path, mode, kind):
    facts = probe.parse_probe(run_probe_locally(str(tmp_path), [shims[mode]]), str(tmp_path))
    assert facts.gpu.diagnosis.kind == kind and not facts.gpu.ok
    levels = {p.level for p in probe.problems(facts) if p.message == facts.gpu.diagnosis.message}
    assert levels == {"error"}


def test_probe_without_nvidia_smi(tmp_path):
    facts = probe.parse_probe(run_probe_locally(str(tmp_path), []), str(tmp_path))
    assert facts.gpu.diagnosis.kind == "missing"
    # a CPU host is a warning, not an error, unless a GPU is required
    [p] = [p for p in probe.problems(facts) if "nvidia-smi" in p.message]
    assert p.level == "warning"
    assert any(p.level == "error" for p in probe.problems(facts, need_gpu=True))
    # a Slurm login node has no driver by design: its jobs' GPUs come from the gres
    assert not [p for p in probe.problems(facts, login_node=True) if "nvidia-smi" in p.message]


def test_probe_reads_state_results_verify_and_env_pythons(tmp_path):
    work = tmp_path / "w o'rk"  # quoting: a space and a quote in the workdir
    logs = work / "bootstrap" / "logs"
    logs.mkdir(parents=True)
    (work / "bootstrap" / "state.json").write_text(json.dumps({"version": 1, "steps": {"env": {"rc": 0}}}))
    (logs / "env.result").write_text('{"step": "env", "fingerprint": "abc", "rc": 0, "started": 1, "ended": 2}\n')
    (logs / "torch.result").write_text('{"step": "torch", "fingerprint": "def", "rc": 1, "started": 1, "ended": 2}')
    (work / "bootstrap" / "verify.json").write_text('{"ok": true}')
    env_bin = work / "envs" / "x" / "bin"
    env_bin.mkdir(parents=True)
    (env_bin / "python").symlink_to(sys.executable)
    facts = probe.parse_probe(
        run_probe_locally(str(work), [], pythons=["envs/x/bin/python", "/nope/bin/python"]), str(work)
    )
    assert facts.workdir_exists
    assert facts.state["steps"]["env"]["rc"] == 0
    assert facts.results["env"]["fingerprint"] == "abc" and facts.results["torch"]["rc"] == 1
    assert facts.verify == {"ok": True}
    env = facts.envs[str(env_bin / "python")]  # relative paths are resolved under the workdir
    assert env.version == "%d.%d.%d" % sys.version_info[:3] and not env.missing
    assert "torch" in env.packages and "flash-attn" in env.packages
    assert facts.envs["/nope/bin/python"].missing


def test_relative_workdir_is_under_home(tmp_path, monkeypatch):
    out = run_probe_locally("orch-test-relative", [])
    facts = probe.parse_probe(out, "orch-test-relative")
    assert facts.workdir == str(Path.home() / "orch-test-relative")


def test_a_workdir_with_a_newline_stays_one_value_and_is_flagged(tmp_path):
    wd = str(tmp_path / "a\nworkdir=/elsewhere")
    facts = probe.parse_probe(run_probe_locally(wd, []), wd)
    assert facts.workdir == wd  # never the "/elsewhere" a line-based read would take
    assert any("control character" in w for w in facts.warnings)


def test_probe_lists_tmux_sessions_on_the_orch_socket(tmp_path):
    if not shutil.which("tmux"):
        pytest.skip("tmux not installed")
    import subprocess

    sock = tmp_path / "tmux.sock"
    subprocess.run(["tmux", "-S", str(sock), "new-session", "-d", "-s", "orch-bootstrap-torch", "sleep 30"], check=True)
    try:
        facts = probe.parse_probe(run_probe_locally(str(tmp_path), [], base_path="/usr/bin:/bin"), str(tmp_path))
        assert facts.tmux_sessions == ["orch-bootstrap-torch"]
        assert facts.tmux_version
    finally:
        subprocess.run(["tmux", "-S", str(sock), "kill-server"], check=False)


# --- pure parsers --------------------------------------------------------------------------


def test_parse_sections_keeps_exit_codes_and_survives_truncation():
    text = "@@orch:begin a\nline 1\nline 2\n\n@@orch:end a 3\n@@orch:begin b\npartial"
    s = probe.parse_sections(text)
    assert s["a"].rc == 3 and s["a"].text == "line 1\nline 2"
    assert s["b"].rc is None and s["b"].text == "partial"


def test_garbage_output_is_a_warning():
    facts = probe.parse_probe("bash: command not found\n", "/w")
    assert facts.warnings and any(p.level == "error" for p in probe.problems(facts))


@pytest.mark.parametrize(
    "text,version",
    [
        ("glibc 2.36", "2.36"),
        ("ldd (Ubuntu GLIBC 2.35-0ubuntu3.8) 2.35", "2.35"),
        ("ldd (GNU libc) 2.28", "2.28"),
        ("ldd (Debian GLIBC 2.31-13+deb11u11) 2.31", "2.31"),
        ("musl libc (x86_64)\nVersion 1.2.4", ""),
        ("", ""),
    ],
)
def test_parse_glibc(text, version):
    assert probe.parse_glibc(text) == version


def test_parse_meminfo_df_os_release():
    mem = "MemTotal:       131072000 kB\nMemAvailable:   130023424 kB\nSwapTotal:             0 kB\n"
    assert probe.parse_meminfo(mem) == (125.0, 124.0, 0.0)
    df = (
        "Filesystem     1024-blocks     Used Available Capacity Mounted on\n"
        "/dev/vda         264212084 17825792  67108864      21% /\n"
    )
    assert probe.parse_df(df) == ("/", 64.0)
    assert probe.parse_os_release('PRETTY_NAME="Ubuntu 24.04.3 LTS"\nNAME="Ubuntu"\n') == "Ubuntu 24.04.3 LTS"
    assert probe.parse_os_release('NAME="Rocky Linux"\nVERSION_ID="8.9"\n') == "Rocky Linux 8.9"


def test_parse_nvcc_fixture():
    assert probe.parse_nvcc("path=/usr/local/cuda/bin/nvcc\n" + (FIXTURES / "nvcc-version.txt").read_text()) == (
        "/usr/local/cuda/bin/nvcc",
        "13.0",
    )
    assert probe.parse_nvcc("") == ("", "")


def test_parse_conda_and_pythons():
    (c,) = probe.parse_conda("prefix=/home/u/miniconda3 version=24.11.3 tos_plugin=1 conda_forge=0\n")
    assert (c.prefix, c.version, c.tos_plugin, c.conda_forge, c.usable) == (
        "/home/u/miniconda3",
        "24.11.3",
        True,
        False,
        True,
    )
    assert c.conda == "/home/u/miniconda3/bin/conda"
    assert not probe.CondaInstall("/x", "4.5.1").usable
    text = (
        'name=python3 path=/usr/bin/python3\n{"executable": "/usr/bin/python3", "version": "3.12.3", '
        '"prefix": "/usr", "base_prefix": "/usr", "venv": false, "torch": "2.11.0+cu130", "torch_cuda": "13.0", '
        '"flash-attn": null}\n'
        'name=python3.9 path=/usr/bin/python3.9\n{"broken": true}\n'
    )
    a, b = probe.parse_pythons(text)
    assert (a.name, a.version, a.minor, a.venv, a.packages["torch"], a.torch_cuda) == (
        "python3",
        "3.12.3",
        "3.12",
        False,
        "2.11.0+cu130",
        "13.0",
    )
    assert b.broken and b.version == ""


def test_facts_round_trip_through_the_local_record(tmp_path, shims):
    facts = probe.parse_probe(run_probe_locally(str(tmp_path), [shims["ok"]]), str(tmp_path))
    probe.save_facts(tmp_path, "nigel", facts, {"bootstrap": {"env": "default"}})
    loaded, data = probe.load_facts(tmp_path, "nigel")
    assert loaded == facts and data["bootstrap"] == {"env": "default"}
    assert probe.facts_path(tmp_path, "nigel") == tmp_path / ".orch" / "hosts" / "nigel.facts.json"
    assert probe.load_facts(tmp_path, "other") is None
    rows = dict(probe.fact_rows(facts))
    assert rows["gpu"].startswith("1x NVIDIA H200 (sm_90")


def test_problems_for_missing_tools():
    facts = probe.HostFacts(workdir="/w", tools={"bash": "/bin/bash"}, disk_path="/", disk_free_gb=5)
    messages = [(p.level, p.message.split(":")[0]) for p in probe.problems(facts)]
    assert ("error", "tmux is missing") in messages
    assert ("warning", "rsync is missing") in messages
    assert any("GiB free" in m for _, m in messages)


def test_probe_command_is_one_quoted_bash_invocation():
    """bootstrap/probe.sh's text travels inside the one command (one round trip, no upload)."""
    cmd = probe.probe_command("/w/it's here", ["envs/default/bin/python"])
    assert cmd.startswith("bash --norc -c ") and "'/w/it'\"'\"'s here'" in cmd  # --norc: see probe_command
    argv = shlex.split(cmd)
    script = (Path(__file__).resolve().parents[2] / "bootstrap" / "probe.sh").read_text()
    assert argv[:5] == ["bash", "--norc", "-c", script, "orch-probe"]
    assert argv[argv.index("--fields") + 1] == (
        "index,name,uuid,driver_version,memory.total,memory.used,utilization.gpu,compute_cap,pci.bus_id"
    )
    assert argv[-3:] == ["--", "/w/it's here", "envs/default/bin/python"]


def test_the_probe_script_runs_by_itself_and_says_how_when_called_wrong(tmp_path):
    script = Path(__file__).resolve().parents[2] / "bootstrap" / "probe.sh"
    wrong = subprocess.run(["bash", str(script), str(tmp_path)], capture_output=True, text=True)
    assert wrong.returncode == 2 and "usage: probe.sh" in wrong.stderr
    ok = subprocess.run(
        [
            "bash",
            str(script),
            "--version",
            "7",
            "--tools",
            "bash",
            "--fields",
            "index",
            "--fields-nocc",
            "index",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    sections = probe.parse_sections(ok.stdout)
    assert sections["probe-version"].text == "7" and sections["workdir"].text == str(tmp_path)
    assert sections["which"].text.startswith("bash=/")


def test_a_project_with_its_own_probe_script_uses_it(tmp_path):
    (tmp_path / "bootstrap").mkdir()
    (tmp_path / "bootstrap" / "probe.sh").write_text("echo the probe of this project")
    assert "the probe of this project" in probe.probe_command("/w", [], project_root=tmp_path)
    assert "the probe of this project" not in probe.probe_command("/w", [], project_root=tmp_path / "elsewhere")


@pytest.mark.parametrize(
    "line", ["[1, 2]", '"text"', "7", "[" * 100_000, '{"version": ["3"], "torch": {"x": 1}, "base_prefix": 5}']
)
def test_a_python_line_of_the_wrong_shape_is_a_broken_or_plain_python_not_a_crash(line):
    from orchestrator.provision.probe import _python_info

    info = _python_info({"path": "/p/python", "name": "x"}, line)
    if line.startswith("{"):
        assert (info.version, info.base_prefix, info.packages) == ("['3']", "5", {})
    else:
        assert info.broken


def test_numbers_in_probe_output_are_ascii_digits_of_a_sane_length():
    """`"²".isdigit()` is True and int() refuses it; 5000 digits are refused by int() too."""
    from orchestrator.provision.probe import parse_df, parse_meminfo, parse_sections

    assert parse_meminfo("MemTotal: " + "9" * 5000 + " kB\nMemAvailable: 1048576 kB") == (0.0, 1.0, 0.0)
    assert parse_df("Filesystem 1K-blocks Used Available Capacity Mounted\n/dev/x 1 2 ² 5% /") == ("", 0.0)
    assert parse_sections("@@orch:begin x\nbody\n@@orch:end x " + "9" * 5000)["x"].rc is None


@pytest.mark.parametrize("cuda", ["abc", ".", "12", "1e5", "١٢.٤"])
def test_a_cuda_version_that_is_not_one_is_unknown(cuda):
    from orchestrator.provision.gpu import parse_plain_header, parse_xml

    xml = f"<nvidia_smi_log><driver_version>550.1</driver_version><cuda_version>{cuda}</cuda_version></nvidia_smi_log>"
    assert parse_xml(xml).cuda_version == ""
    assert parse_plain_header(f"Driver Version: 550.1   CUDA Version: {cuda} |")[1] == ""
