"""`orch bootstrap` end to end through the real sshd on 127.0.0.1, real tmux, real bash scripts.

The test host has no GPU. An `nvidia-smi` shim (and an `nvcc` shim) on the host's extra_path
replays the real outputs captured on an H200 host (tests/fixtures/gpu-host/h200), so the plan
for an H200 with driver 580 / CUDA 13.0 is exercised end to end. The env is a venv made with
--system-site-packages from a python that already has torch, so nothing is downloaded.

The Miniconda step runs against a LOCAL FAKE INSTALLER built by the test, with the same
command-line contract as the real Miniconda3-*.sh (`-b` batch, `-u` update, `-p PREFIX`),
served from a file:// URL with its sha256: the real download cannot be reached from CI.
"""

import hashlib
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timing
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("hostfixtures", REPO / "tests" / "unit" / "hostfixtures.py")
hostfixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hostfixtures)

IN_VENV = sys.prefix != sys.base_prefix

# In a venv, the test host's "system" python3 is this stand-in for the test's own python:
# `python -m venv` always bases a new venv on the *base* interpreter, so a
# --system-site-packages venv made from a venv's python would not see the torch installed
# in that venv. The stand-in makes such venvs also read this venv's site-packages (a .pth
# file), which is what a host with torch in its system python gives `torch: preinstalled`.
HOST_PYTHON_SHIM = r"""#!/bin/bash
"__REAL__" "$@"; rc=$?
if [ "$rc" = 0 ] && [ "${1:-}" = -m ] && [ "${2:-}" = venv ]; then
  ssp=0; for a in "$@"; do prefix="$a"; [ "$a" = --system-site-packages ] && ssp=1; done
  if [ "$ssp" = 1 ]; then
    site=$("$prefix/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    printf '%s\n' "__SITE__" > "$site/orch-test-host-python.pth"
  fi
fi
exit "$rc"
"""


def _host_python_bin(tmp_path) -> str:
    """A folder whose python3 has torch, and makes --system-site-packages venvs that see it."""
    if not IN_VENV:
        return os.path.dirname(os.path.realpath(sys.executable))
    import sysconfig

    folder = tmp_path / "host-python"
    folder.mkdir(exist_ok=True)
    shim = folder / "python3"
    shim.write_text(
        HOST_PYTHON_SHIM.replace("__REAL__", sys.executable).replace("__SITE__", sysconfig.get_paths()["purelib"])
    )
    shim.chmod(0o755)
    return str(folder)


def _host_python(p_bin: str) -> str:
    return os.path.join(p_bin, "python3")


def _has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


needs_torch = pytest.mark.skipif(not _has_torch(), reason="the test python has no torch to reuse")


def _host_with_h200_shims(p, tmp_path):
    shims = hostfixtures.write_gpu_shims(tmp_path / "gpu-shims", "ok")
    p.write_host(extra_path=[str(shims), _host_python_bin(tmp_path)])
    # The shims show an H200 while the preinstalled torch is a CPU build: verify fails such
    # a host unless its env accepts the CPU (torch.cuda: cpu), as a user would say of it.
    venv = yaml.safe_load((p.root / "configs" / "envs" / "venv.yaml").read_text())
    _write_env(p, "venv", venv)
    return shims


def _write_env(p, name, data):
    """Env NAME in the test project; a preinstalled torch is accepted as the CPU build it is
    here (torch.cuda: cpu), unless DATA says otherwise."""
    torch = data.get("torch") or {}
    if torch.get("version") == "preinstalled":
        data = {**data, "torch": {"cuda": "cpu", **torch}}
    (p.root / "configs" / "envs" / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _configured_python(p, host="testhost"):
    return yaml.safe_load((p.root / "configs" / "hosts" / f"{host}.yaml").read_text())["python"]


def test_dry_run_shows_the_h200_plan_and_changes_nothing(ssh_project, tmp_path):
    p = ssh_project
    _host_with_h200_shims(p, tmp_path)
    proc = p.orch("bootstrap", "testhost", "--env", "default", "--dry-run", "--json", check=True)
    doc = json.loads(proc.stdout)
    assert doc["dry_run"] is True
    gpu = doc["facts"]["gpu"]
    assert gpu["diagnosis"]["kind"] == "ok" and gpu["cuda_version"] == "13.0"
    assert [(g["name"], g["compute_cap"]) for g in gpu["gpus"]] == [("NVIDIA H200", "9.0")]
    plan = doc["plan"]
    steps = {s["name"]: s for s in plan["steps"]}
    # Miniconda without an accepted ToS: blocked, with the way out
    assert steps["conda"]["state"] == "blocked" and "Terms of Service" in steps["conda"]["why"]
    assert plan["torch"]["variant"] == "cu130" and "torch==2.11.*" in steps["torch"]["command"]
    fa = plan["flash_attn"]
    assert (fa["kind"], fa["version"], fa["env"]["FLASH_ATTN_CUDA_ARCHS"]) == ("source", "2.8.3.post1", "90")
    assert "FLASH_ATTENTION_FORCE_BUILD=TRUE" in steps["flash-attn"]["command"]
    assert not (p.remote_root / "envs").exists() and not (p.remote_root / "bootstrap").exists()
    # The human view: facts, the table, the exact commands.
    text = p.orch("bootstrap", "testhost", "--env", "default", "--dry-run", "--accept-anaconda-tos", check=True).stdout
    assert "NVIDIA H200 (sm_90" in text and "install_conda.sh" in text and "Miniconda3-latest-Linux-" in text
    assert "todo" in text and "Traceback" not in text


def _base_python_without_torch():
    """A base interpreter (not a venv) that can make venvs and has no torch, or None."""
    probe = (
        "import sys, importlib.util as u, ensurepip, venv; "
        "sys.exit(0 if sys.prefix == sys.base_prefix and u.find_spec('torch') is None else 1)"
    )
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(candidate) and subprocess.run([candidate, "-c", probe], capture_output=True).returncode == 0:
            return candidate
    return None


def test_preinstalled_torch_missing_from_the_hosts_python_is_named(ssh_project, tmp_path):
    """`torch: preinstalled` where the host's python3 has no torch: the dry run marks the
    torch step blocked, and a real bootstrap stops there saying torch is missing (not a
    pip build-isolation story)."""
    bare = _base_python_without_torch()
    if bare is None:
        pytest.skip("no python without torch on this machine to stand for the host's")
    p = ssh_project
    bin_dir = tmp_path / "bare-bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(bare)
    shims = hostfixtures.write_gpu_shims(tmp_path / "gpu-shims", "ok")
    p.write_host(extra_path=[str(shims), str(bin_dir)])
    plan = json.loads(p.orch("bootstrap", "testhost", "--env", "venv", "--dry-run", "--json", check=True).stdout)
    torch = {s["name"]: s for s in plan["plan"]["steps"]}["torch"]
    assert torch["state"] == "blocked", torch
    assert f"torch is missing from {bin_dir}/python3 (the python the venv is made from)" in torch["why"]
    real = p.orch("bootstrap", "testhost", "--env", "venv", timeout=240)
    assert real.returncode == 6, real.stdout + real.stderr  # ExitCode.HOST_TOOLS
    assert "bootstrap step torch is blocked: torch is missing from" in real.stderr
    assert f"install torch into {bin_dir}/python3" in real.stderr
    assert "build isolation" not in real.stderr and "Traceback" not in real.stderr


@needs_torch
def test_bootstrap_venv_then_nothing_to_do(ssh_project, tmp_path):
    p = ssh_project
    _host_with_h200_shims(p, tmp_path)
    proc = p.orch("bootstrap", "testhost", "--env", "venv", timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stderr  # progress; bootstrap prints data (the plan, --json) on stdout only
    assert proc.stdout == ""
    assert "NVIDIA H200" in out
    assert "bootstrap of testhost complete (env, torch, packages, verify)" in out, out
    # the packages step ran detached in tmux, with its log tailed here
    assert "detached in tmux session orch-bootstrap-packages" in out and "Requirement already satisfied" in out

    env_python = p.remote_root / "envs" / "venv" / "bin" / "python"
    assert env_python.exists()
    assert _configured_python(p) == str(env_python)  # jobs now use the env's interpreter by absolute path
    verify = json.loads((p.remote_root / "bootstrap" / "verify.json").read_text())
    assert verify["ok"] and verify["torch"] and verify["checks"]["bf16_matmul"]["status"] == "ok"
    assert verify["checks"]["sdpa_flash_vs_math"]["status"] == "skipped"  # no GPU visible to torch
    state = json.loads((p.remote_root / "bootstrap" / "state.json").read_text())
    assert state["env"] == "venv" and {"env", "torch", "packages", "verify"} <= set(state["steps"])
    assert all(r["rc"] == 0 for r in state["steps"].values())
    # flash-attn: skipped with the reason (the preinstalled torch is a CPU build)
    facts = json.loads((p.root / ".orch" / "hosts" / "testhost.facts.json").read_text())
    assert facts["bootstrap"]["flash_attn_kind"] == "unsupported"
    assert facts["bootstrap"]["steps"]["flash-attn"] == "skip"

    # Again: nothing to do, in one SSH login (the env comes from the record). How fast that
    # is belongs to bench/bench_controller.py, not to a test on a shared machine.
    logins = p.sshd.logins()
    again = p.orch("bootstrap", "testhost", check=True)
    assert "nothing to do" in again.stderr
    assert p.sshd.logins() == logins + 1

    # what `orch hosts show` prints: the recorded facts and environment.
    from rich.console import Console

    from orchestrator.commands.hosts import show_host
    from orchestrator.config.project import Project

    console = Console(record=True, width=200)
    show_host(Project(p.root), "testhost", console)
    shown = console.export_text()
    assert "NVIDIA H200" in shown and "venv ->" in shown and "verify ok" in shown


@needs_torch
def test_two_bootstraps_of_one_host_do_not_run_at_once(ssh_project, tmp_path):
    """The second `orch bootstrap` of a host finds the first one's lock (through the real
    sshd) and stops before touching anything; a dead holder is broken with --break-lock."""
    p = ssh_project
    _host_with_h200_shims(p, tmp_path)
    wheel = _tiny_wheel(tmp_path)
    _write_env(
        p,
        "slowpkg",
        {
            "manager": "venv",
            "python": "system",
            "system_site_packages": True,
            "torch": {"version": "preinstalled"},
            "flash_attn": {"wanted": False},
            "packages": [str(wheel)],
        },
    )
    lock = p.remote_root / "bootstrap" / "lock"
    first = p.popen("bootstrap", "testhost", "--env", "slowpkg")
    try:
        deadline = time.time() + timing.scaled(60)
        while not (lock / "owner.json").exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert (lock / "owner.json").exists(), "the first bootstrap never took the lock"
        # Hold the first where it is (however busy the machine): the second arrives meanwhile.
        first.send_signal(signal.SIGSTOP)
        second = p.orch("bootstrap", "testhost", "--env", "slowpkg", timeout=120)
        assert second.returncode == 8, second.stdout + second.stderr
        assert "another `orch bootstrap` holds the lock on testhost" in second.stderr
        assert f"(pid {first.pid})" in second.stderr and "--break-lock" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGCONT)
        out, _ = first.communicate(timeout=timing.scaled(240))
    assert first.returncode == 0, out
    assert not lock.exists()  # released when done

    # A holder that died without releasing: refused while fresh, taken with --break-lock.
    from orchestrator.config.hosts import HostConfig
    from orchestrator.provision import hostlock
    from orchestrator.transport.base import LocalTransport

    dead = hostlock.HostLock(
        LocalTransport(HostConfig(name="local", workdir=str(p.remote_root))), str(lock), "laptop", "orch bootstrap"
    )
    dead.acquire()
    refused = p.orch("bootstrap", "testhost", "--env", "slowpkg", "--force", "packages", timeout=120)
    assert refused.returncode == 8 and "--break-lock" in refused.stderr
    assert p.orch("bootstrap", "testhost", "--env", "slowpkg", "--dry-run", timeout=120).returncode == 0  # reads only
    broke = p.orch("bootstrap", "testhost", "--env", "slowpkg", "--force", "packages", "--break-lock", timeout=240)
    assert broke.returncode == 0, broke.stdout + broke.stderr
    assert "broke lock of `orch bootstrap`" in broke.stderr and "complete (packages, verify)" in broke.stderr
    assert not lock.exists()


def _tiny_wheel(folder: Path) -> Path:
    """A minimal pure-python wheel pip installs offline."""
    import zipfile

    path = folder / "orchtestpkg-0.1-py3-none-any.whl"
    files = {
        "orchtestpkg/__init__.py": "VALUE = 42\n",
        "orchtestpkg-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: orchtestpkg\nVersion: 0.1\n",
        "orchtestpkg-0.1.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: orch-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},,\n" for name in files) + "orchtestpkg-0.1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
        z.writestr("orchtestpkg-0.1.dist-info/RECORD", record)
    return path


@needs_torch
def test_failed_step_is_diagnosed_then_resumed_and_force_redoes_one_step(ssh_project, tmp_path):
    p = ssh_project
    _host_with_h200_shims(p, tmp_path)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = wheels / "orchtestpkg-0.1-py3-none-any.whl"  # does not exist yet: the packages step fails
    _write_env(
        p,
        "resume",
        {
            "manager": "venv",
            "python": "system",
            "system_site_packages": True,
            "torch": {"version": "preinstalled"},
            "flash_attn": {"wanted": False},
            "packages": [str(wheel)],
        },
    )
    first = p.orch("bootstrap", "testhost", "--env", "resume", timeout=240)
    assert first.returncode == 7, first.stdout + first.stderr  # ExitCode.REMOTE
    assert "bootstrap step packages failed on testhost" in first.stderr
    assert "re-run `orch bootstrap testhost` to resume at this step" in first.stderr
    assert "Traceback" not in first.stderr
    env_result = (p.remote_root / "bootstrap" / "logs" / "env.result").read_text()

    _tiny_wheel(wheels)
    second = p.orch("bootstrap", "testhost", "--env", "resume", timeout=240)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "── env" not in second.stderr and "── torch" not in second.stderr  # resumed at packages
    assert "bootstrap of testhost complete (packages, verify)" in second.stderr
    assert (p.remote_root / "bootstrap" / "logs" / "env.result").read_text() == env_result
    env_python = p.remote_root / "envs" / "resume" / "bin" / "python"
    assert subprocess.run([str(env_python), "-c", "import orchtestpkg"]).returncode == 0

    forced = p.orch("bootstrap", "testhost", "--env", "resume", "--force", "verify", check=True, timeout=240)
    assert "bootstrap of testhost complete (verify)" in forced.stderr
    bad = p.orch("bootstrap", "testhost", "--force", "nope")
    assert bad.returncode == 2 and "no such step" in bad.stderr


FAKE_INSTALLER = r"""#!/bin/bash
# A stand-in for Miniconda3-latest-Linux-x86_64.sh (orch tests): same command line contract.
#   -b batch mode (no prompts; shell rc files untouched)  -u update an existing prefix  -p PREFIX
set -euo pipefail
batch=0; update=0; prefix="$HOME/miniconda3"
while getopts "bufp:st" opt; do
  case "$opt" in
    b) batch=1 ;; u) update=1 ;; p) prefix="$OPTARG" ;; f|s|t) ;; *) exit 2 ;;
  esac
done
[ "$batch" = 1 ] || { echo "fake installer: would prompt for the licence (no -b)" >&2; exit 1; }
if [ -e "$prefix" ] && [ "$update" = 0 ]; then echo "ERROR: File or directory already exists: '$prefix'" >&2; exit 1; fi
mkdir -p "$prefix/bin" "$prefix/conda-meta"
echo "$*" > "$prefix/installer-args.txt"
touch "$prefix/conda-meta/conda-25.5.1-py311h06a4308_0.json" "$prefix/conda-meta/conda-anaconda-tos-0.2.2-py311_0.json"
cat > "$prefix/bin/conda" <<'EOF'
#!/bin/bash
# fake conda (orch tests)
here="$(cd "$(dirname "$0")/.." && pwd)"
echo "$*" >> "$here/conda-calls.log"
case "$1" in
  --version) echo "conda 25.5.1" ;;
  tos)
    if [ "${2:-}" = "--help" ]; then echo "usage: conda tos"; exit 0; fi
    if [ "${2:-}" = accept ]; then echo "${@: -1}" >> "$here/tos-accepted.txt"; exit 0; fi
    exit 1 ;;
  create)
    shift; env=""
    while [ $# -gt 0 ]; do case "$1" in -p) env="$2"; shift 2 ;; *) shift ;; esac; done
    [ -n "$CONDA_PLUGINS_AUTO_ACCEPT_TOS" ] || [ -s "$here/tos-accepted.txt" ] || {
      echo "CondaToSNonInteractiveError: Terms of Service have not been accepted" >&2; exit 1; }
    exec __PYTHON__ -m venv --system-site-packages "$env" ;;
  *) echo "fake conda: unsupported: $*" >&2; exit 1 ;;
esac
EOF
sed -i "s|__PYTHON__|__REALPY__|" "$prefix/bin/conda"
chmod +x "$prefix/bin/conda"
echo "installed fake Miniconda at $prefix"
"""


@needs_torch
def test_miniconda_step_with_a_local_fake_installer(ssh_project, tmp_path):
    """The conda path end to end, against a fake installer with Miniconda's -b/-u/-p contract
    (the real download cannot be reached from CI)."""
    p = ssh_project
    _host_with_h200_shims(p, tmp_path)
    installer = tmp_path / "dl" / "Miniconda3-latest-Linux-x86_64.sh"
    installer.parent.mkdir()
    real_python = _host_python(_host_python_bin(tmp_path)) if IN_VENV else os.path.realpath(sys.executable)
    installer.write_text(FAKE_INSTALLER.replace("__REALPY__", real_python))
    sha = hashlib.sha256(installer.read_bytes()).hexdigest()
    _write_env(
        p,
        "conda-fake",
        {
            "manager": "conda",
            "python": "3.11",
            "torch": {"version": "preinstalled"},
            "flash_attn": {"wanted": False},
            "packages": [],
            "conda": {"installer_url": installer.as_uri(), "installer_sha256": sha},
        },
    )
    bashrc = Path.home() / ".bashrc"
    bashrc_before = bashrc.read_bytes() if bashrc.exists() else None

    refused = p.orch("bootstrap", "testhost", "--env", "conda-fake")
    assert refused.returncode == 3, refused.stdout + refused.stderr  # ExitCode.CONFIG
    assert "Terms of Service" in refused.stderr and "--accept-anaconda-tos" in refused.stderr
    assert "manager: miniforge" in refused.stderr
    prefix = p.remote_root / "miniconda3"
    assert not prefix.exists()

    proc = p.orch("bootstrap", "testhost", "--env", "conda-fake", "--accept-anaconda-tos", timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sha256 ok" in proc.stderr
    assert (prefix / "installer-args.txt").read_text().split() == ["-b", "-p", str(prefix)]
    calls = (prefix / "conda-calls.log").read_text()
    assert f"create -y -p {p.remote_root}/envs/conda-fake python=3.11 pip" in calls
    assert "init" not in calls.split()  # never `conda init`: rc files are not touched
    assert (prefix / "tos-accepted.txt").read_text().split() == [
        "https://repo.anaconda.com/pkgs/main",
        "https://repo.anaconda.com/pkgs/r",
    ]
    assert (bashrc.read_bytes() if bashrc.exists() else None) == bashrc_before
    assert _configured_python(p) == str(p.remote_root / "envs" / "conda-fake" / "bin" / "python")

    again = p.orch("bootstrap", "testhost", "--env", "conda-fake", "--accept-anaconda-tos", check=True)
    assert "nothing to do" in again.stderr


def test_install_conda_refuses_a_bad_checksum(tmp_path):
    installer = tmp_path / "Miniforge3-Linux-x86_64.sh"
    installer.write_text("#!/bin/bash\necho should-not-run\n")
    proc = subprocess.run(
        [
            "bash",
            str(REPO / "bootstrap" / "install_conda.sh"),
            "--flavor",
            "miniforge",
            "--prefix",
            str(tmp_path / "mf"),
            "--url",
            installer.as_uri(),
            "--sha256",
            "0" * 64,
            "--download-dir",
            str(tmp_path / "dl"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 5 and "sha256 mismatch" in proc.stderr and "should-not-run" not in proc.stdout
    assert not (tmp_path / "mf").exists()


@needs_torch
def test_a_detached_step_is_reattached_and_times_out_with_a_hint(ssh_project, tmp_path):
    """A long step runs in tmux on the host: a new `orch bootstrap` reattaches to it (here, a
    step started by hand the way the controller starts it), and a step that outlives its
    timeout leaves the controller with a clear message while it keeps running."""
    p = ssh_project
    _host_with_h200_shims(p, tmp_path)
    missing = tmp_path / "orchtestpkg-0.1-py3-none-any.whl"
    _write_env(
        p,
        "slow",
        {
            "manager": "venv",
            "python": "system",
            "system_site_packages": True,
            "torch": {"version": "preinstalled"},
            "flash_attn": {"wanted": False},
            "packages": [str(missing)],
            "timeouts": {"install": 1.0},
        },
    )
    assert p.orch("bootstrap", "testhost", "--env", "slow", timeout=240).returncode == 7  # packages fails
    plan = json.loads(p.orch("bootstrap", "testhost", "--env", "slow", "--dry-run", "--json", check=True).stdout)
    step = next(s for s in plan["plan"]["steps"] if s["name"] == "packages")
    assert step["state"] == "todo"
    work = p.remote_root
    sock, logs = str(work / "tmux.sock"), str(work / "bootstrap" / "logs")

    def start(release: Path):
        """A step that runs until the test creates ``release`` (at most 10 minutes)."""
        body = (
            f"echo slow-step-begins; for i in $(seq 3000); do [ -e {shlex.quote(str(release))} ] && break; "
            "sleep 0.2; done; echo slow-step-done"
        )
        inner = [
            "bash",
            str(work / "bootstrap" / "scripts" / "run_step.sh"),
            "packages",
            step["fingerprint"],
            logs,
            "--",
            "bash",
            "-c",
            body,
        ]
        subprocess.run(
            ["tmux", "-S", sock, "new-session", "-d", "-s", "orch-bootstrap-packages", shlex.join(inner)], check=True
        )

    # 1. reattach: the step finishes while we follow it; then verify runs.
    release = tmp_path / "release-step"
    start(release)
    follow = p.start("bootstrap", "testhost", "--env", "slow")
    try:
        follow.wait_for("reattaching to the running step (tmux session orch-bootstrap-packages)", timeout=240)
        release.touch()
    finally:
        rc = follow.finish(timeout=240)
    assert rc == 0, follow.stdout + follow.stderr
    assert "slow-step-done" in follow.stderr and "complete (packages, verify)" in follow.stderr

    # 2. timeout (timeouts.install: 0.1 minutes): the controller gives up, the step keeps running.
    _write_env(
        p,
        "slow",
        {
            "manager": "venv",
            "python": "system",
            "system_site_packages": True,
            "torch": {"version": "preinstalled"},
            "flash_attn": {"wanted": False},
            "packages": [str(missing)],
            "timeouts": {"install": 0.1},
        },
    )
    step = next(
        s
        for s in json.loads(
            p.orch(
                "bootstrap", "testhost", "--env", "slow", "--force", "packages", "--dry-run", "--json", check=True
            ).stdout
        )["plan"]["steps"]
        if s["name"] == "packages"
    )
    start(tmp_path / "never-released")
    try:
        proc = p.orch("bootstrap", "testhost", "--env", "slow", timeout=240)
        assert proc.returncode == 7, proc.stdout + proc.stderr
        assert "step packages is still running after" in proc.stderr
        assert f"tmux -S {sock} kill-session -t orch-bootstrap-packages" in proc.stderr
        alive = subprocess.run(["tmux", "-S", sock, "has-session", "-t", "=orch-bootstrap-packages"])
        assert alive.returncode == 0
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True)


# --- the host scripts on their own (no SSH) ------------------------------------------------------

FAKE_ENV_PYTHON = r"""#!/bin/bash
# A fake env interpreter for build_flash_attn.sh: reports TORCH_FACTS, records pip calls.
here="$(dirname "$0")"
case "$*" in
  *"import sys, platform, torch"*) echo "__FACTS__" ;;
  "-m pip install"*) echo "$*" >> "$here/pip-calls.log" ;;
  "-m pip download"*)  # an sdist into --dest, as pip does
    echo "FLASH_ATTENTION_SKIP_CUDA_BUILD=${FLASH_ATTENTION_SKIP_CUDA_BUILD:-} $*" >> "$here/pip-calls.log"
    args=("$@"); for i in "${!args[@]}"; do
      case "${args[$i]}" in --dest) dest="${args[$((i + 1))]}" ;; flash-attn==*) ver="${args[$i]#flash-attn==}" ;; esac
    done
    [ -n "${FAKE_PIP_NO_SDIST:-}" ] || touch "$dest/flash_attn-$ver.tar.gz" ;;
  "-m pip uninstall"*) ;;
  *"import flash_attn"*) echo "flash_attn 2.5.6 imports ok" ;;
  *) echo "fake python: $*" >&2; exit 1 ;;
esac
"""


def _fake_env(tmp_path, facts: str) -> Path:
    bin_dir = tmp_path / "env" / "bin"
    bin_dir.mkdir(parents=True)
    py = bin_dir / "python"
    py.write_text(FAKE_ENV_PYTHON.replace("__FACTS__", facts))
    (bin_dir / "ninja").write_text("#!/bin/bash\necho 1.11.1\n")
    for f in (py, bin_dir / "ninja"):
        f.chmod(0o755)
    return py


def test_build_script_takes_the_wheel_for_the_real_abi(tmp_path):
    from orchestrator.provision import flashattn

    py = _fake_env(tmp_path, "2.2.2 12.1 TRUE cp39 x86_64")  # a torch built with the new ABI
    wheel = flashattn.wheel_name("2.5.6", "122", "2.2", False, "3.9", "x86_64")
    proc = subprocess.run(
        [
            "bash",
            str(REPO / "bootstrap" / "build_flash_attn.sh"),
            "--python",
            str(py),
            "--version",
            "2.5.6",
            "--wheel-url",
            flashattn.wheel_url("2.5.6", wheel),
            "--wheel",
            wheel,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "taking that wheel instead" in proc.stdout and "imports ok" in proc.stdout
    calls = (py.parent / "pip-calls.log").read_text().splitlines()
    assert calls[0].startswith("-m pip install packaging psutil ninja einops")
    assert calls[-1] == (
        "-m pip install --no-deps --no-cache-dir https://github.com/Dao-AILab/flash-attention/"
        "releases/download/v2.5.6/flash_attn-2.5.6+cu122torch2.2cxx11abiTRUE-cp39-cp39-linux_x86_64.whl"
    )


def test_build_script_fetches_on_a_login_node_then_builds_with_no_downloads(tmp_path):
    """Slurm: --fetch-only on the login node downloads; --wheelhouse on the compute node
    (no internet there) installs the build tools from nowhere and flash-attn from the sdist."""
    py = _fake_env(tmp_path, "2.8.0 12.8 TRUE cp311 x86_64")
    cuda = tmp_path / "cuda"
    (cuda / "bin").mkdir(parents=True)
    (cuda / "bin" / "nvcc").write_text("#!/bin/bash\necho 'Cuda compilation tools, release 12.8, V12.8.93'\n")
    (cuda / "bin" / "nvcc").chmod(0o755)
    house = tmp_path / "w d" / "wheelhouse"
    script = ["bash", str(REPO / "bootstrap" / "build_flash_attn.sh"), "--python", str(py), "--version", "2.8.3"]
    script += ["--source", "--cuda-home", str(cuda)]
    env = dict(os.environ, MAX_JOBS="2")
    fetch = subprocess.run([*script, "--fetch-only", str(house)], capture_output=True, text=True, env=env)
    assert fetch.returncode == 0, fetch.stdout + fetch.stderr
    assert (house / "flash_attn-2.8.3.tar.gz").is_file() and "nvcc" not in fetch.stdout.split("== downloading")[1]
    log = py.parent / "pip-calls.log"
    calls = log.read_text().splitlines()
    assert calls[0].startswith("-m pip install packaging psutil ninja einops")
    assert calls[1].startswith("FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE -m pip download --no-deps --no-build-isolation")
    assert len(calls) == 2  # nothing installed yet
    log.unlink()
    build = subprocess.run([*script, "--wheelhouse", str(house)], capture_output=True, text=True, env=env)
    assert build.returncode == 0, build.stdout + build.stderr
    assert log.read_text().splitlines() == [
        f"-m pip install -v --no-index --find-links {house} --no-build-isolation --no-deps --no-cache-dir "
        "flash-attn==2.8.3"
    ]
    assert "imports ok" in build.stdout
    empty = tmp_path / "empty"
    missing = subprocess.run(
        [*script, "--fetch-only", str(empty)], capture_output=True, text=True, env=dict(env, FAKE_PIP_NO_SDIST="1")
    )
    assert missing.returncode == 8 and f"left no flash-attn 2.8.3 sdist in {empty}" in missing.stderr


def test_build_script_refuses_an_nvcc_of_another_major(tmp_path):
    from orchestrator.provision import flashattn

    py = _fake_env(tmp_path, "2.4.1 12.1 FALSE cp311 x86_64")
    cuda = tmp_path / "cuda"
    (cuda / "bin").mkdir(parents=True)
    (cuda / "bin" / "nvcc").write_text(
        "#!/bin/bash\ncat " + shlex.quote(str(hostfixtures.FIXTURES / "nvcc-version.txt")) + "\n"
    )
    (cuda / "bin" / "nvcc").chmod(0o755)
    proc = subprocess.run(
        [
            "bash",
            str(REPO / "bootstrap" / "build_flash_attn.sh"),
            "--python",
            str(py),
            "--version",
            "2.6.3",
            "--source",
            "--cuda-home",
            str(cuda),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, MAX_JOBS="2"),
    )
    assert proc.returncode == 7
    found = flashattn.diagnose_log(proc.stdout + proc.stderr, proc.returncode)
    assert found and found[0][0] == "nvcc/torch CUDA mismatch: nvcc 13.0 vs torch built with CUDA 12.1"
    assert not any("flash-attn==" in c for c in (py.parent / "pip-calls.log").read_text().splitlines())
