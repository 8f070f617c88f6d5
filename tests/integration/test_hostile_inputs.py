"""Hostile names, paths and files through the real sshd, tmux and rsync (issue 9, items 8-10, 14).

Every test checks the laptop's and the host's files afterwards: nothing executed, nothing
written outside the configured folders, nothing secret shipped."""

import json
import os
import stat
import sys

import pytest
import yaml
from hostile import kill_processes_under

pytestmark = pytest.mark.integration

FAST = ["--set", "train.steps=5", "--set", "train.log_every=5"]


@pytest.fixture
def p(ssh_project):
    yield ssh_project
    kill_processes_under(ssh_project.root.parent)


def _pwned(root):
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.startswith("PWNED")]


def test_tmux_format_syntax_in_paths_and_values_is_literal(p, tmp_path):
    """#(cmd) and #{fmt} in the workdir, the python path, a data file name, labels and
    --set values: tmux runs none of them (it expanded the workdir, passed as -c)."""
    workdir = tmp_path / "w #(touch PWNED_tmux_wd) #{session_name}" / "host"
    pydir = tmp_path / "py #(touch PWNED_tmux_py)"
    pydir.mkdir()
    python = pydir / "python3"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    p.write_host(workdir=str(workdir), python=str(python))
    data = p.root / "d #(touch PWNED_tmux_data).jsonl"
    rows = [json.loads(line) for line in (p.root / "configs/data/tiny_sentiment.jsonl").read_text().splitlines()]
    label = {"0": "#(touch PWNED_tmux_label)", "1": "#{pane_id}"}
    data.write_text("".join(json.dumps({**r, "label": label[str(r["label"])]}) + "\n" for r in rows))
    desc = "#(touch PWNED_tmux_desc) #{session_name}"
    proc = p.orch(
        "run",
        "smoke",
        "--host",
        "testhost",
        "--name",
        "fmt",
        *FAST,
        "--set",
        f"data.path={json.dumps(data.name)}",
        "--set",
        f"description={json.dumps(desc)}",
        "--set",
        "data.class_names={'#(touch PWNED_tmux_label)': neg, '#{pane_id}': pos}",
    )
    assert proc.returncode == 0, proc.stderr
    jobs = p.wait_state("fmt")
    assert [j["state"] for j in jobs] == ["done", "done"], jobs
    resolved = yaml.safe_load((workdir / "runs" / "fmt" / "run.yaml").read_text())
    assert resolved["experiment"]["description"] == desc
    assert set(resolved["experiment"]["data"]["classes"]) == set(label.values())
    p.orch("fetch-results", "fmt", check=True)
    assert not _pwned(tmp_path) and not _pwned(os.path.expanduser("~"))


@pytest.mark.parametrize("name", ["trail\n", "trail\r", "x\n\n", "tab\t", "nul-free\x1b[31m"])
def test_run_names_with_control_characters_are_refused(p, name):
    proc = p.orch("run", "smoke", "--host", "testhost", "--name", name, *FAST)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "illegal run name" in proc.stderr and "Traceback" not in proc.stderr
    assert not (p.remote_root / "runs").exists() and not list((p.root / "runs").iterdir())
    for cmd in (["status", name], ["cancel", name], ["logs", name], ["fetch-results", name]):
        other = p.orch(*cmd)
        assert other.returncode == 2 and "illegal run name" in other.stderr, (cmd, other.stderr)


@pytest.mark.parametrize(
    "key,value",
    [
        ("workdir", "{tmp}/a\nb/host"),
        ("workdir", "{tmp}/host\n"),
        ("workdir", "{tmp}/ho\rst"),
        ("python", "{python}\n/bin/sh"),
        ("identity_file", "{key}\n"),
        ("known_hosts_file", "{known}\t"),
        ("extra_path", ["/usr/bin", "/opt/x\ny"]),
        ("hostname", "127.0.0.1\n"),
        ("user", "me\x1b"),
        ("proxy_jump", "a\nb"),
        ("proxy_command", "nc %h %p\nrm -rf ~"),
    ],
)
def test_control_characters_in_host_paths_are_config_errors(p, tmp_path, key, value):
    """A workdir with a newline once made the line-based prepare parse pick another folder:
    code, data and runs were written outside the configured workdir."""
    if isinstance(value, str):
        value = value.format(tmp=tmp_path, python=sys.executable, key=p.sshd.client_key, known=p.sshd.known_hosts)
    path = p.write_host(**{key: value})
    proc = p.orch("run", "smoke", "--host", "testhost", "--name", "ctl", *FAST)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert str(path) in proc.stderr and f"key '{key}" in proc.stderr and "control character" in proc.stderr
    assert "Traceback" not in proc.stderr
    written = [d for d in tmp_path.iterdir() if d.name not in ("project", "hostwork")]
    assert written == [] and not p.remote_root.exists()


def test_a_data_file_name_with_a_newline_is_refused(p):
    data = p.root / "two\nlines.jsonl"
    data.write_bytes((p.root / "configs/data/tiny_sentiment.jsonl").read_bytes())
    proc = p.orch(
        "run", "smoke", "--host", "testhost", "--name", "nl", *FAST, "--set", f"data.path={json.dumps(data.name)}"
    )
    assert proc.returncode == 3 and "control character" in proc.stderr and "data.path" in proc.stderr, proc.stderr
    assert not (p.remote_root / "data").exists()


SECRETS = {
    "remote/run_job.py~": "HF_TOKEN=hf_secret1",
    "remote/.#train.py": "x",
    "remote/#train.py#": "x",
    "remote/.train.py.swp": "x",
    "remote/train.py.orig": "x",
    "remote/train.py.bak": "x",
    "remote/.netrc": "machine h password p",
    "configs/.pypirc": "password: p",
    "bootstrap/aws_secret.sh": "x",
    "configs/experiments/hf_token.yaml": "x",
    "remote/.env": "K=v",
    "remote/.env.prod": "K=v",
    "bootstrap/id_ed25519": "KEY",
    "remote/cert.pem": "x",
    "remote/notes.txt": "not code",
    "configs/envs/private.key": "x",
    "configs/experiments/Prod_SECRET.yaml": "x",  # case does not make a secret shareable
    "configs/envs/MySecret.yml": "x",
    "bootstrap/ID_ED25519.sh": "x",
    "bootstrap/Secret_env.py": "x",
}


def _careless_tree(p):
    for rel, text in SECRETS.items():
        (p.root / rel).write_text(text + "\n")
    (p.root / "remote" / "extra_new.py").write_text("X = 1\n")  # new code: shipped
    (p.root / "remote" / "spec.py").chmod(0o600)
    (p.root / "bootstrap" / "make_env.sh").chmod(0o777)


def _shipped(p):
    (snapshot,) = [d for d in (p.remote_root / "code").iterdir() if not d.name.startswith(".")]
    return snapshot, {
        f.relative_to(snapshot).as_posix(): stat.S_IMODE(f.stat().st_mode)
        for f in snapshot.rglob("*")
        if f.is_file() and f.name != ".complete" and "__pycache__" not in f.parts
    }  # (the host's own)


def test_secrets_never_reach_the_host_and_modes_are_0644_0755(p):
    _careless_tree(p)
    proc = p.orch("run", "smoke", "--host", "testhost", "--name", "sec", *FAST)
    assert proc.returncode == 0, proc.stderr
    snapshot, shipped = _shipped(p)
    assert not set(SECRETS) & set(shipped)
    assert "remote/extra_new.py" in shipped
    assert all(mode in (0o644, 0o755) for mode in shipped.values()), shipped
    assert shipped["bootstrap/make_env.sh"] == 0o755 and shipped["remote/spec.py"] == 0o644
    for f in snapshot.rglob("*"):
        if f.is_file():
            assert b"hf_secret1" not in f.read_bytes()
    assert [j["state"] for j in p.wait_state("sec")] == ["done", "done"]


def test_dry_run_lists_what_a_launch_sends_without_contacting_the_host(p):
    _careless_tree(p)
    logins = p.sshd.logins()
    dry = p.orch("run", "smoke", "--host", "testhost", "--name", "dry", *FAST, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert p.sshd.logins() == logins and not p.remote_root.exists()  # never contacted
    listed = {
        line.split()[-1]: line.split()[:2]
        for line in dry.stdout.splitlines()
        if line.startswith("  ") and len(line.split()) == 3
    }
    assert "remote/extra_new.py" in listed and listed["remote/spec.py"][1] == "644"
    assert listed["bootstrap/make_env.sh"][1] == "755"
    assert int(listed["remote/run_job.py"][0]) == (p.root / "remote/run_job.py").stat().st_size
    assert not set(SECRETS) & set(listed)
    assert "session orch-dry-class-0" in dry.stdout and "remote.run_job" in dry.stdout
    assert "  train.steps: 5" in dry.stdout  # the experiment as resolved: --set shows
    assert not (p.root / "runs" / "dry").exists()
    plan = json.loads(p.orch("run", "smoke", "--host", "testhost", *FAST, "--dry-run", "--json", check=True).stdout)
    assert plan["experiment"]["train"]["steps"] == 5 and {f["path"] for f in plan["code_files"]} == set(listed)
    p.write_host(port=1)  # a dry run never connects, so an unreachable host is fine
    assert p.orch("run", "smoke", "--host", "testhost", "--dry-run").returncode == 0
    p.write_host()
    p.orch("run", "smoke", "--host", "testhost", "--name", "sent", *FAST, check=True)
    assert set(_shipped(p)[1]) == set(listed)  # exactly what the dry run listed
    # every key as the launch resolves it: data.name too (the dry run printed "" for it)
    sent = yaml.safe_load((p.root / "runs" / "sent" / "run.yaml").read_text())["experiment"]
    assert plan["experiment"]["data"]["name"] == sent["data"]["name"] == "tiny_sentiment"
    assert [j["state"] for j in p.wait_state("sent")] == ["done", "done"]
    taken = p.orch("run", "smoke", "--host", "testhost", "--name", "sent", "--dry-run")
    assert taken.returncode == 8 and "run 'sent' already exists" in taken.stderr  # as the launch would say
