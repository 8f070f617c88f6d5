"""A payload for tests/unit/test_warm.py, run by the warm worker as `python -m tests.unit.warm_payload MODE`.

echo: print what a job would see (argv, cwd, an environment variable, its process group)
and exit 3.  sleep: say "ready", then sleep until signalled.  where: print the files its
code came from (this module, the `remote` package) and sys.path's first entry.
"""

import os
import sys
import time

mode = sys.argv[1]
if mode == "echo":
    print("argv", sys.argv[1:])
    print("cwd", os.getcwd())
    print("env", os.environ.get("WARM_TEST", "<unset>"))
    print("own group", os.getpgid(0) == os.getpid())
    import gc

    print("frozen", gc.get_freeze_count() > 0)  # the preload's objects: out of the collector's sight
    with open("/proc/self/cmdline", "rb") as fh:
        print("cmdline", " ".join(a.decode() for a in fh.read().split(b"\0") if a))
    print("to stderr", file=sys.stderr)
    sys.exit(3)
if mode == "where":
    import remote

    print("payload", __file__)
    print("remote", remote.__file__)
    print("path0", sys.path[0])
if mode == "sleep":
    print("ready", flush=True)
    time.sleep(120)
