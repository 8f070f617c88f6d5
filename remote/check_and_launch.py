# Runs on the host, as `python -c` from the workdir, before orch's code may be there: one
# round trip that says what the host has and, when nothing is missing, launches the run.
# Standard library only.  stdin: the request (orchestrator/runs/hostlaunch.py); stdout:
# NUL-terminated key=value records (the host's facts, as hostctl.prepare reads them) and
# last `reply=<JSON>` (docs/CONTRACT.md, "check-and-launch").
import json
import os
import shutil
import subprocess
import sys
import time
from importlib.util import find_spec


def rec(key, value):
    sys.stdout.write("%s=%s\0" % (key, value))


req = json.load(sys.stdin)
wd = os.getcwd()
try:  # the shell's name for it (as `cd` left it, links kept), as hostctl.prepare reports it
    if os.path.samefile(os.environ.get("PWD", ""), wd):
        wd = os.environ["PWD"]
except OSError:
    pass
rec("workdir", wd)
# What orch uses on any host (orchestrator/runs/hostops.py: HOST_TOOLS), then the job
# backend's tools (tmux; Slurm: sbatch, squeue, ...).
for tool in ["rsync", "nvidia-smi"] + [t for t in req.get("tools", []) if t not in ("rsync", "nvidia-smi")]:
    rec(tool, "yes" if shutil.which(tool) else "no")
rec("python", "yes")
modules = {}
for name in req.get("modules", []):
    try:  # find_spec imports nothing of a top-level module: this costs no torch start-up
        modules[name] = find_spec(name) is not None
    except (ImportError, ValueError):
        modules[name] = False
    rec("module_" + name, "yes" if modules[name] else "no")
gpus = []
if req.get("list_gpus") and shutil.which("nvidia-smi"):
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            timeout=120,
        ).stdout
        gpus = [line.strip() for line in out.decode(errors="replace").splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        pass
    for gpu in gpus:
        rec("gpu", gpu)

code = os.path.join(wd, "code")
os.makedirs(code, exist_ok=True)
# Leftovers of interrupted syncs (an hour is far longer than a sync takes).
for entry in os.listdir(code):
    path = os.path.join(code, entry)
    try:
        if (
            entry.startswith(".staging-")
            and os.path.isdir(path)
            and not os.path.islink(path)
            and time.time() - os.lstat(path).st_mtime > req.get("stale_s", 3600)
        ):
            shutil.rmtree(path, ignore_errors=True)
    except OSError:
        pass

dest = os.path.join(code, req["code_hash"])
marker = os.path.join(dest, ".complete")
publish = req.get("publish")
if publish:
    # Publish the staging folder as the snapshot with one rename.  rename(2) of a folder
    # never replaces a non-empty one, so a snapshot published meanwhile by another launch
    # wins and this copy is dropped.
    staging = os.path.join(code, publish)
    open(os.path.join(staging, ".complete"), "w").close()
    if not os.path.isfile(marker):
        if os.path.isdir(dest):
            try:  # a folder without the marker is no snapshot: set it aside for the cleanup
                os.rename(dest, os.path.join(code, ".staging-broken-" + publish[len(".staging-") :]))
            except OSError:
                pass
        try:
            os.rename(staging, dest)
        except OSError as exc:
            if not os.path.isfile(marker):
                sys.exit("cannot publish %s: %s" % (dest, exc))
    if os.path.isdir(staging):
        shutil.rmtree(staging, ignore_errors=True)

# The job backend's look at the cluster (Slurm: sinfo's partitions), which the controller
# holds the jobs against (can they ever start?) before any is submitted: it launches only
# when the output is what the controller checked (`expect`), or when the command fails
# (then nothing is known, and the scheduler has the last word).
probed = None
probe = req.get("probe")
if probe:
    try:
        done = subprocess.run(
            probe["argv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=30
        )
        said = done.stderr.decode(errors="replace").strip().splitlines()
        probed = {
            "rc": done.returncode,
            "text": done.stdout.decode(errors="replace"),
            "error": said[-1] if said else "",
        }
    except (OSError, subprocess.SubprocessError) as exc:
        probed = {"rc": -1, "text": "", "error": str(exc)}
    probed["text"] = probed["text"].replace("\0", "")[: 1 << 20]

reply = {
    "code": os.path.isfile(marker),
    "missing_data": [p for p in req.get("data", []) if not os.path.isfile(p)],
    "run_exists": bool(req.get("run_dir")) and os.path.lexists(req["run_dir"]),
    "launch": None,
    "probe": probed,
}
fresh = req.get("fresh", True)  # a new run; a resume relaunches into its existing folder
ready = (
    reply["code"]
    and not reply["missing_data"]
    and not (fresh and reply["run_exists"])
    and req.get("plan") is not None
    and wd == req.get("workdir")
    and all(shutil.which(t) for t in req.get("tools", []))
    and all(modules.values())
    and (req.get("gpus") is None or gpus == req["gpus"])
    and (probed is None or probed["rc"] != 0 or probed["text"] == probe.get("expect"))
)
if not ready:
    if not reply["code"] and req.get("staging"):
        os.makedirs(os.path.join(code, req["staging"]), exist_ok=True)
    if reply["missing_data"]:
        os.makedirs(os.path.join(wd, "data"), exist_ok=True)
else:
    run_dir = req["run_dir"]
    os.makedirs(run_dir, exist_ok=not fresh)
    tmp = os.path.join(run_dir, ".run.yaml.tmp")
    with open(tmp, "w") as fh:
        fh.write(req["run_yaml"])
    os.replace(tmp, os.path.join(run_dir, "run.yaml"))
    sys.path.insert(0, dest)
    from remote import hostctl  # noqa: E402 - the run's own snapshot

    try:
        reply["launch"] = hostctl.launch(req["plan"], wd)
    except hostctl.backends.BackendError as exc:
        sys.stdout.flush()
        sys.stderr.write("error: %s\n" % exc)
        sys.exit(2)
rec("reply", json.dumps(reply))
