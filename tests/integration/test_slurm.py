"""`scheduler: slurm` hosts end to end: the real orch CLI, the real sshd, a real Slurm (slurmbed.py).

The login node is the test's sshd (its sessions get SLURM_CONF); jobs run under slurmd on
the same machine, on the same filesystem, as on a cluster's shared one.  Skipped (with the
reason) only where Slurm is not installed or not root; CI installs it (.ci/run).  The tests
that train for minutes (requeue, time limit, smoke) are in test_slurm_requeue.py, so that
the two files' clusters run side by side in two pytest workers.
"""

import json
import time

import pytest
import timing
from slurmcases import FAST, LONG, slurm_job, slurm_project, status, wait

pytestmark = pytest.mark.integration


@pytest.fixture
def p(cluster, login, tmp_path):
    yield from slurm_project(cluster, login, tmp_path)


def test_run_status_fetch_metrics_through_slurm(p, tmp_path):
    # Environment modules: a stand-in `module` on the login node's PATH (exported to the job).
    tools = tmp_path / "modules-bin"
    tools.mkdir()
    (tools / "module").write_text('#!/bin/sh\necho "module $* (stand-in)"\n')
    (tools / "module").chmod(0o755)
    p.write_host(
        "cluster",
        scheduler="slurm",
        extra_path=[str(tools)],
        slurm={"partition": p.cluster.partition, "gres": "gpu:1", "modules": ["testmod/1.0"]},
    )
    before = p.sshd.logins()
    proc = p.orch("run", "smoke", "--host", "cluster", "--name", "s1", *FAST, check=True)
    assert proc.stdout == "s1\n" and "launched s1 on cluster" in proc.stderr
    assert p.sshd.logins() == before + 1, "every job is submitted in the launch's one SSH round trip"
    logins = p.sshd.logins()
    doc = status(p, "s1")
    assert p.sshd.logins() == logins + 1, "status (files + squeue) is one SSH round trip"
    ids = {j["name"]: j["backend"]["job_id"] for j in doc["jobs"]}
    assert sorted(ids) == ["class-0", "class-1"] and all(i.isdigit() for i in ids.values()), doc
    for name, job_id in ids.items():
        info = slurm_job(p, job_id)
        assert info["JobName"] == f"orch-s1-{name}" and info["Partition"] == p.cluster.partition
        assert info["Requeue"] == "1" and "gpu:1" in info.get("TresPerNode", "")
    jobs = wait(p, "s1", lambda j: all(x["state"] == "done" for x in j.values()), "done")
    assert all(j["step"] == j["total"] for j in jobs.values()), jobs
    table = p.orch("status", "s1", check=True).stdout
    assert "Slurm id" in table and ids["class-0"] in table
    # The bed's GPUs are fake: Slurm gives each job one, torch cannot use it, the job runs on
    # the CPU and says so everywhere (remote/train.py cpu_fallback_note).
    assert " (ran on CPU)" in table and "class-0, class-1: given a GPU but running on the CPU" in table, table
    fetched = p.orch("fetch-results", "s1", check=True)
    assert "results verified" in fetched.stderr
    assert "given a GPU but ran on the CPU" in fetched.stdout + fetched.stderr  # the evaluation's summary
    metrics = json.loads((p.run_dir("s1") / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.5
    manifest = json.loads((p.run_dir("s1") / "jobs" / "class-0" / "manifest.json").read_text())
    assert manifest["slurm"] == {"job_id": ids["class-0"], "requeues": 0}
    assert manifest["device"] == "cpu" and manifest["device_note"].startswith("this job was given GPU "), manifest
    logs = p.orch("logs", "s1", "class-1", "-n", "100", check=True).stdout
    assert "train step" in logs and "WARNING: this job was given GPU " in logs
    followed = p.orch("logs", "s1", "-f", "-n", "5", check=True, timeout=60).stdout  # ends: every job has
    assert "class-0" in followed and "class-1" in followed and "exit 0" in followed
    # The module was loaded in the batch job, before python started.
    assert "module load testmod/1.0 (stand-in)" in (p.remote_job("s1", "class-0") / "slurm.out").read_text()


def test_pretrain_runs_first_by_afterok_dependency(p):
    p.orch(
        "run",
        "smoke",
        "--host",
        "cluster",
        "--name",
        "pre",
        *FAST,
        "--set",
        "pretrain.enabled=true",
        "--set",
        "pretrain.steps=10",
        "--set",
        "data.unlabelled_path=configs/data/tiny_sentiment.jsonl",
        check=True,
    )
    ids = {j["name"]: j["backend"]["job_id"] for j in status(p, "pre")["jobs"]}
    assert list(ids) == ["pretrain", "class-0", "class-1"]
    for name in ("class-0", "class-1"):
        dep = slurm_job(p, ids[name]).get("Dependency", "")
        # Slurm clears a dependency once met: right after launch pretrain is still starting.
        assert dep in (f"afterok:{ids['pretrain']}(unfulfilled)", "(null)"), dep
    jobs = wait(p, "pre", lambda j: all(x["state"] == "done" for x in j.values()), "done", timeout=300)
    assert jobs["pretrain"]["state"] == "done"
    log = (p.remote_job("pre", "class-0") / "log.txt").read_text()
    assert "pretrain checkpoint" in log


def test_cancel_pending_and_running_then_resume_only_what_is_not_done(p):
    # Each job takes both GPUs: class-1 waits in Slurm's queue (Resources) while class-0 runs.
    p.write_host("cluster", scheduler="slurm", slurm={"partition": p.cluster.partition, "gres": "gpu:2"})
    p.orch("run", "smoke", "--host", "cluster", "--name", "c1", *FAST, "--set", "train.steps=60", check=True)
    # Slurm says reason "None" until its scheduler first looks at a new job (seconds, under load).
    jobs = wait(
        p,
        "c1",
        lambda j: (
            j["class-1"]["backend"].get("state") == "PENDING"
            and j["class-1"]["backend"].get("reason") in ("Resources", "Priority")
        ),
        "class-1 queued for Resources",
    )
    assert jobs["class-1"]["state"] == "pending"
    # No log yet: `orch logs` says where it is instead (held, so class-0's end cannot start it meanwhile).
    p.cluster.cmd("scontrol", "hold", jobs["class-1"]["backend"]["job_id"])
    logs = p.orch("logs", "c1", "class-1")
    assert logs.returncode == 8 and "no log yet for class-1: class-1 is queued, PENDING: " in logs.stderr, logs.stderr
    assert f"(scheduler id {jobs['class-1']['backend']['job_id']})" in logs.stderr, logs.stderr
    cancelled = p.orch("cancel", "c1", "class-1")
    assert cancelled.returncode == 0, cancelled.stderr
    jobs = wait(p, "c1", lambda j: j["class-0"]["state"] == "done", "class-0 done")
    assert jobs["class-1"]["state"] == "cancelled" and "before it started" in jobs["class-1"]["reason"]
    first_id = jobs["class-1"]["backend"]["job_id"]
    assert p.cluster.job_state(first_id) == "CANCELLED"
    done_id = jobs["class-0"]["backend"]["job_id"]
    p.orch("run", "smoke", "--resume", "c1", check=True)
    jobs = wait(p, "c1", lambda j: j["class-1"]["state"] == "done", "class-1 done")
    assert jobs["class-1"]["backend"]["job_id"] != first_id  # resubmitted ...
    assert jobs["class-0"]["backend"]["job_id"] == done_id  # ... and only it
    assert p.orch("fetch-results", "c1").returncode == 0

    # A running job: cancelled by orch (scancel + the wrapper's own record) ...
    p.write_host("cluster", scheduler="slurm", slurm={"partition": p.cluster.partition, "gres": "gpu:1"})
    p.orch("run", "smoke", "--host", "cluster", "--name", "c2", *LONG, check=True)
    jobs = wait(p, "c2", lambda j: all(x["state"] == "running" for x in j.values()), "running")
    assert p.orch("cancel", "c2", "class-0").returncode == 0
    # ... and one killed in Slurm behind orch's back (scancel by hand): Slurm's word is recorded.
    p.cluster.cmd("scancel", jobs["class-1"]["backend"]["job_id"])
    jobs = wait(p, "c2", lambda j: all(x["state"] == "cancelled" for x in j.values()), "cancelled")
    assert jobs["class-0"]["reason"] == "cancelled by the user"
    assert "scancel" in jobs["class-1"]["reason"] and "Slurm: CANCELLED" in jobs["class-1"]["reason"]
    # Recorded in the job folder: it outlives Slurm's memory of the job (MinJobAge).
    on_host = json.loads((p.remote_job("c2", "class-1") / "status.json").read_text())
    assert on_host["state"] == "cancelled"


def test_a_hand_scancel_ends_when_slurm_ended_it_and_stays_cancelled_once_slurm_forgets(p):
    # The bed keeps no accounting (accounting_storage/none, no slurmdbd): sacct fails, as on
    # such a cluster, and a job Slurm has forgotten (MinJobAge) cannot be looked up.
    assert p.cluster.cmd("sacct", "-n", "-X", check=False).returncode != 0
    p.orch("run", "smoke", "--host", "cluster", "--name", "hc", *LONG, check=True)
    jobs = wait(p, "hc", lambda j: all(x["state"] == "running" for x in j.values()), "running")
    ids = {name: job["backend"]["job_id"] for name, job in jobs.items()}

    def ran_for(name: str, cancelled_at: float) -> float:
        started = json.loads((p.remote_job("hc", name) / "status.json").read_text())["started"]
        return cancelled_at - started

    # class-1: scancel by hand, and orch asks a while later, while Slurm still lists the job:
    # `elapsed` stops at Slurm's end time, not at the moment orch noticed (asked 4 s later: more
    # than the 3 s the assertion allows, so the moment orch noticed cannot pass for the end).
    p.cluster.cmd("scancel", ids["class-1"])
    cancelled_at = time.time()
    time.sleep(4)
    jobs = wait(p, "hc", lambda j: j["class-1"]["state"] == "cancelled", "class-1 cancelled")
    assert "scancel" in jobs["class-1"]["reason"] and "Slurm: CANCELLED" in jobs["class-1"]["reason"]
    assert jobs["class-1"]["elapsed_s"] <= ran_for("class-1", cancelled_at) + 3, jobs["class-1"]

    # class-0: scancel by hand, and nobody asks until Slurm has forgotten the job (a short
    # MinJobAge): slurmstepd's notice in its slurm.out says it was cancelled, and when.
    with p.cluster.configured(MinJobAge="5"):
        p.cluster.cmd("scancel", ids["class-0"])
        cancelled_at = time.time()
        timing.wait_for(lambda: p.cluster.job_state(ids["class-0"]) is None, 120, "Slurm to forget class-0")
        job = {j["name"]: j for j in status(p, "hc")["jobs"]}["class-0"]
    assert job["state"] == "cancelled" and "cancelled in Slurm (scancel)" in job["reason"], job
    assert "Slurm's notice in slurm.out" in job["reason"]
    assert job["elapsed_s"] <= ran_for("class-0", cancelled_at) + 3, job
    assert json.loads((p.remote_job("hc", "class-0") / "status.json").read_text())["state"] == "cancelled"


def test_hosts_check_reads_sinfo(p):
    doc = json.loads(p.orch("hosts", "check", "cluster", "--json", check=True).stdout)
    parts = {x["partition"]: x for x in doc["slurm_partitions"]}
    assert parts["gpu"]["gres"].startswith("gpu:fake:2") and parts["gpu"]["default"] == "yes"
    assert parts["gpu"]["time_limit"] == "infinite" and parts["gpu"]["default_time"] == "n/a"
    assert not [x for x in doc["problems"] if "slurm" in x["message"]]
    # slurm.time unset: jobs get the partition's DefaultTime, which the default warn_before
    # (120 s) must leave time before, as a slurm.time must.
    with p.cluster.configured():  # what the block changes is undone after it
        p.cluster.cmd("scontrol", "update", "PartitionName=gpu", "DefaultTime=1")
        checked = p.orch("hosts", "check", "cluster", "--json")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    (late,) = [x for x in json.loads(checked.stdout)["problems"] if "warn_before" in x["message"]]
    assert late["level"] == "error" and "default time limit (DefaultTime) of partition 'gpu', 1:00" in late["message"]
    table = p.orch("hosts", "check", "cluster").stdout
    assert "gres gpu:fake:2" in table
    p.write_host("cluster", scheduler="slurm", slurm={"partition": "nosuch"})
    checked = p.orch("hosts", "check", "cluster", "--json")
    assert checked.returncode == 1, checked.stderr  # a check that found an error fails, after its report
    doc = json.loads(checked.stdout)
    assert any("'nosuch' is not a partition here (sinfo lists: gpu)" in x["message"] for x in doc["problems"])
    table = p.orch("hosts", "check", "cluster")
    assert table.returncode == 1 and "error:" in table.stdout and "'nosuch' is not a partition" in table.stdout


def test_a_job_that_dies_before_its_wrapper_or_is_refused_says_why(p):
    # No `module` command on the node: the batch script fails before orch's wrapper runs,
    # and only Slurm's output of it (slurm.out) says why.
    p.write_host("cluster", scheduler="slurm", slurm={"partition": "gpu", "gres": "gpu:1", "modules": ["cuda/12.4"]})
    p.orch("run", "smoke", "--host", "cluster", "--name", "m1", *FAST, check=True)
    jobs = wait(p, "m1", lambda j: all(x["state"] == "failed" for x in j.values()), "failed")
    assert "`orch logs` shows Slurm's output of it, slurm.out" in jobs["class-0"]["reason"], jobs
    logs = p.orch("logs", "m1", "class-0", check=True)
    assert "orch: module load cuda/12.4 failed" in logs.stdout
    assert "class-0 has no log.txt (orch's wrapper never ran): this is Slurm's output" in logs.stderr
    both = p.orch("logs", "m1", check=True).stdout
    assert both.count("slurm.out <==") == 2 and both.count("module load cuda/12.4 failed") == 2
    followed = p.orch("logs", "m1", "class-1", "-f", check=True, timeout=60).stdout  # ended: the plain tail
    assert "module load cuda/12.4 failed" in followed
    p.orch("fetch-results", "m1", "--partial", "--no-eval")
    assert "module load cuda/12.4 failed" in (p.run_dir("m1") / "jobs" / "class-0" / "slurm.out").read_text()

    # sbatch refuses the job (a node has 2 GPUs): the run exists, its id is printed, the refusal
    # is each job's recorded end, and a --resume after the fix submits with the new options.
    p.write_host("cluster", scheduler="slurm", slurm={"partition": "gpu", "gres": "gpu:3"})
    refused = p.orch("run", "smoke", "--host", "cluster", "--name", "g3", *FAST)
    assert refused.returncode == 7 and refused.stdout == "g3\n", refused.stderr
    assert "run g3 was created, but jobs did not start" in refused.stderr and "--resume g3" in refused.stderr
    jobs = {j["name"]: j for j in status(p, "g3")["jobs"]}
    assert jobs["class-0"]["state"] == "failed" and jobs["class-0"]["reason"].startswith("sbatch refused it:")
    assert "--gres=gpu:3" in jobs["class-0"]["reason"]
    table = p.orch("status", "g3", check=True).stdout
    assert "failed (sbatch refused it:" in table
    logs = p.orch("logs", "g3", "class-0")  # no log: it says why
    assert (
        logs.returncode == 8
        and "no log yet for class-0: class-0 failed before it wrote one: sbatch refused it:" in (logs.stderr)
    ), logs.stderr
    # mem in sbatch's own units (G then B): accepted by orch's check and by sbatch itself
    p.write_host("cluster", scheduler="slurm", slurm={"partition": "gpu", "gres": "gpu:1", "mem": "1GB"})
    p.orch("run", "smoke", "--resume", "g3", "--host", "cluster", check=True)  # the same host: accepted
    wait(p, "g3", lambda j: all(x["state"] == "done" for x in j.values()), "done")


def test_hostile_and_refused_slurm_values(p):
    dry = p.orch("run", "smoke", "--host", "cluster", "--name", "dry", *FAST, "--dry-run", check=True).stdout
    assert "each one sbatch submission from the login node" in dry
    assert "GPUs: those Slurm allocates for --gres=gpu:1 in partition gpu (its nodes' gres decide)" in dry
    assert "--partition=gpu --gres=gpu:1" in dry and "exec env PYTHONPATH=" in dry and "--requeueable" in dry
    p.write_host("cluster", scheduler="slurm", slurm={"partition": "gpu --wrap=touch /tmp/pwned", "gres": "gpu:1"})
    bad = p.orch("run", "smoke", "--host", "cluster", "--name", "h1", *FAST)
    assert bad.returncode == 3 and "slurm.partition" in bad.stderr and "Traceback" not in bad.stderr
    p.write_host("cluster", scheduler="slurm", slurm={"extra_args": ["--output=/etc/x"]})
    bad = p.orch("run", "smoke", "--host", "cluster", "--name", "h2", *FAST)
    assert bad.returncode == 3 and "extra_args[0]" in bad.stderr and "orch sets --output" in bad.stderr
    # Well-formed but unknown to the cluster: the launch's look at the partitions (sinfo)
    # refuses it before anything is submitted.
    p.write_host("cluster", scheduler="slurm", slurm={"partition": "nosuch"})
    refused = p.orch("run", "smoke", "--host", "cluster", "--name", "h3", *FAST)
    assert refused.returncode == 3 and "Traceback" not in refused.stderr, refused.stderr
    assert "slurm.partition 'nosuch' is not a partition here (sinfo lists: gpu)" in refused.stderr
    assert "nothing was submitted" in refused.stderr and not p.run_dir("h3").exists()
    assert not (p.remote_root / ".." / "pwned").exists()


def test_study_resume_relaunches_a_cancelled_job_while_its_runs_other_job_runs(p):
    """An scancel by hand ends class-0 while class-1 of the same run trains on: `orch study
    resume` relaunches class-0 (as `orch run smoke --resume RUN` would), not "nothing to resume"."""
    study = {"base": "smoke", "host": "cluster", "seeds": [0], "set": {"train.steps": 100000}, "members": {"m": {}}}
    (p.root / "configs" / "studies").mkdir(exist_ok=True)
    (p.root / "configs" / "studies" / "sr.yaml").write_text(json.dumps(study))
    p.orch("study", "run", "sr", check=True)
    jobs = wait(p, "sr-m-s0", lambda j: all(x["state"] == "running" for x in j.values()), "running")
    p.cluster.cmd("scancel", jobs["class-0"]["backend"]["job_id"])
    wait(p, "sr-m-s0", lambda j: j["class-0"]["state"] == "cancelled", "class-0 cancelled")
    proc = p.orch("study", "resume", "sr")
    assert proc.returncode == 0 and "relaunched class-0 of sr-m-s0" in proc.stderr, proc.stdout + proc.stderr
    jobs = wait(p, "sr-m-s0", lambda j: j["class-0"]["state"] in ("pending", "running"), "class-0 again")
    assert jobs["class-1"]["backend"]["job_id"] != jobs["class-0"]["backend"]["job_id"]


HELD = ["--begin=now+1hour"]  # jobs stay queued (BeginTime) until the test lets them go


def test_jobs_that_can_never_start_are_refused_at_launch_and_end_a_watch(p):
    """A slurm.time over the partition's limit: Slurm would keep the jobs PENDING
    (PartitionTimeLimit) for good, and `orch run --wait` waited for good."""
    slurm = {"partition": "gpu", "gres": "gpu:1", "time": "30", "extra_args": HELD}
    p.write_host("cluster", scheduler="slurm", slurm=slurm)
    p.orch("run", "smoke", "--host", "cluster", "--name", "nv1", *FAST, check=True)  # fits: MaxTime=INFINITE
    ids = [json.loads((p.remote_job("nv1", j) / "backend.json").read_text())["handle"] for j in ("class-0", "class-1")]
    with p.cluster.configured():  # the partition's limit is put back after the block
        p.cluster.cmd("scontrol", "update", "PartitionName=gpu", "MaxTime=5")
        before = p.sshd.sessions()
        refused = p.orch("run", "smoke", "--host", "cluster", "--name", "nv2", *FAST)
        assert refused.returncode == 3 and "Traceback" not in refused.stderr, refused.stderr
        assert "slurm.time '30' (30 min) is over the time limit of partition 'gpu', 5:00 (5 min)" in refused.stderr
        assert "nothing was submitted" in refused.stderr and "set slurm.time to 5:00 or less" in refused.stderr
        assert p.sshd.sessions() == before + 1, "the check is the launch's own round trip"
        assert not p.run_dir("nv2").exists() and not p.cluster.cmd("squeue", "-h", "-n", "orch-nv2-class-0").stdout
        # Jobs queued before the limit shrank: Slurm will never start them, and a watch says so.
        for job_id in ids:
            p.cluster.cmd("scontrol", "update", f"JobId={job_id}", "StartTime=now")
        watch = p.orch("status", "nv1", "--watch", "--interval", "0.5", timeout=180)
        assert watch.returncode == 8, watch.stdout + watch.stderr
        assert "run nv1 cannot end: class-0 (PENDING: Partition" in watch.stderr, watch.stderr
        assert "Slurm will never start it" in watch.stderr and "`orch cancel nv1`" in watch.stderr
        table = p.orch("status", "nv1", check=True).stdout
        assert "Slurm will never start it, " in table, table
        assert p.orch("cancel", "nv1").returncode == 0
    # The partition as it was: the next launch learns the cluster again, the one after is warm.
    p.orch("run", "smoke", "--host", "cluster", "--name", "nv3", *FAST, check=True)
    before = p.sshd.sessions()
    p.orch("run", "smoke", "--host", "cluster", "--name", "nv4", *FAST, check=True)
    assert p.sshd.sessions() == before + 1, "a warm launch on an unchanged cluster is one command"


def test_jobs_slurm_forgets_before_they_start_say_why(p):
    """Slurm forgets an ended job MinJobAge after its end (the bed keeps no accounting): a job
    it cancelled because the job it requires was cancelled stays `failed` with that reason
    (it turned `lost`), and one scancelled by hand while queued is `lost` saying so."""
    p.write_host("cluster", scheduler="slurm", slurm={"partition": "gpu", "gres": "gpu:1", "extra_args": HELD})
    pretrain = ["--set", "pretrain.enabled=true", "--set", "pretrain.steps=10"]
    pretrain += ["--set", "data.unlabelled_path=configs/data/tiny_sentiment.jsonl"]
    with p.cluster.configured(MinJobAge="5"):
        p.orch("run", "smoke", "--host", "cluster", "--name", "dep", *FAST, *pretrain, check=True)
        p.orch("run", "smoke", "--host", "cluster", "--name", "qc", *FAST, check=True)

        def handle(run, job):
            return json.loads((p.remote_job(run, job) / "backend.json").read_text())["handle"]

        assert p.orch("cancel", "dep", "pretrain").returncode == 0  # Slurm cancels the jobs that require it
        scancelled = handle("qc", "class-0")
        p.cluster.cmd("scancel", scancelled)  # by hand, while it waits in the queue
        for job_id in (handle("dep", "class-0"), handle("dep", "class-1"), scancelled):
            timing.wait_for(lambda job_id=job_id: p.cluster.job_state(job_id) is None, 120, f"Slurm to forget {job_id}")
        dep = {j["name"]: j for j in status(p, "dep")["jobs"]}
        qc = {j["name"]: j for j in status(p, "qc")["jobs"]}
    for name in ("class-0", "class-1"):
        assert dep[name]["state"] == "failed", dep[name]
        assert dep[name]["reason"] == "a job it requires did not end done (pretrain: cancelled); it never started"
    assert qc["class-0"]["state"] == "lost"
    assert qc["class-0"]["reason"] == f"Slurm no longer lists job {scancelled} and it left no end record: never started"
    assert qc["class-1"]["state"] == "pending"
    table = p.orch("status", "qc", check=True).stdout
    assert f"lost (Slurm no longer lists job {scancelled} and it left no end record: never started)" in table


def test_slurms_controller_down_records_nothing_and_says_to_retry(p):
    """slurmctld down at `orch run`: each job was recorded `failed (sbatch refused it: ...
    Unable to contact slurm controller ...)`, and `orch cancel` said "host helper failed"."""
    p.write_host("cluster", scheduler="slurm", slurm={"partition": "gpu", "gres": "gpu:1", "extra_args": HELD})
    p.orch("run", "smoke", "--host", "cluster", "--name", "up", *FAST, check=True)  # queued before the outage
    with p.cluster.controller_down():
        down = p.orch("run", "smoke", "--host", "cluster", "--name", "cd", *FAST, timeout=180)
        assert down.returncode == 7 and down.stdout == "cd\n", down.stderr
        assert (
            "Slurm's controller did not answer on cluster; retry later (`orch run smoke --resume cd` submits the jobs)"
            in down.stderr
        ), down.stderr
        assert "sbatch refused it" not in down.stderr and "Traceback" not in down.stderr
        for job in ("class-0", "class-1"):
            assert not (p.remote_job("cd", job) / "status.json").exists()  # nothing recorded as an end
        jobs = {j["name"]: j for j in status(p, "cd")["jobs"]}
        assert jobs["class-0"]["state"] == "lost" and jobs["class-0"]["reason"].startswith("it never started")
        cancel = p.orch("cancel", "up", timeout=180)
        assert cancel.returncode == 7, cancel.stdout + cancel.stderr
        assert "Slurm's controller did not answer on cluster; nothing was cancelled" in cancel.stderr
        assert "host helper failed" not in cancel.stderr and "orch-unanswered" not in cancel.stderr
    p.orch("run", "smoke", "--resume", "cd", check=True)  # answering again: the jobs go in
    jobs = {j["name"]: j for j in status(p, "cd")["jobs"]}
    assert all(j["state"] == "pending" and j["backend"]["job_id"] for j in jobs.values()), jobs
