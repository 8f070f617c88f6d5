#!/usr/bin/env bash
# The host probe: every fact `orch bootstrap` and `orch hosts check` need, in one run.
#
#   probe.sh --version N --tools "bash tmux ..." --fields F1,F2,... --fields-nocc F1,... [--] WORKDIR [PYTHON]...
#
# WORKDIR: absolute, or relative to $HOME. PYTHON: interpreters to inspect (env pythons;
# relative ones are under the workdir). The options come from orchestrator/provision/probe.py
# (--fields: the nvidia-smi --query-gpu columns its parser reads, --fields-nocc the same
# without compute_cap for old drivers), which ships this file's text and runs it in the same
# round trip: bash --norc -c "<this script>" orch-probe OPTIONS -- WORKDIR PYTHON...
#
# Output: sections, parsed by probe.py's parse_probe:
#   @@orch:begin NAME
#   ...raw output of the section's commands...
#   @@orch:end NAME RC
# No `set -e`: a failing probe command is a fact to report, not a reason to stop.

PROBE_VERSION=""; TOOLS=""; FIELDS=""; FIELDS_NOCC=""
while [ $# -gt 0 ]; do
  case "$1" in
    --version) PROBE_VERSION="$2"; shift 2 ;;
    --tools) TOOLS="$2"; shift 2 ;;
    --fields) FIELDS="$2"; shift 2 ;;
    --fields-nocc) FIELDS_NOCC="$2"; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
if [ $# -lt 1 ] || [ -z "$PROBE_VERSION" ] || [ -z "$FIELDS" ] || [ -z "$FIELDS_NOCC" ]; then
  echo "usage: probe.sh --version N --tools LIST --fields LIST --fields-nocc LIST [--] WORKDIR [PYTHON]..." >&2
  exit 2
fi
WORKDIR="$1"; shift

case "$WORKDIR" in /*) ;; "~") WORKDIR="$HOME" ;; "~/"*) WORKDIR="$HOME/${WORKDIR#\~/}" ;; *) WORKDIR="$HOME/$WORKDIR" ;; esac
export LC_ALL=C
T=""; if command -v timeout >/dev/null 2>&1; then T="timeout 30"; fi
sec() { printf '@@orch:begin %s\n' "$1"; }
endsec() { printf '\n@@orch:end %s %s\n' "$1" "$2"; }
run() { local name="$1"; shift; sec "$name"; "$@" 2>&1; endsec "$name" "$?"; }
PYSNIP=$(cat <<'PYEOF'
import sys, json
d = {"executable": sys.executable, "version": "%d.%d.%d" % tuple(sys.version_info[:3]),
     "prefix": sys.prefix, "base_prefix": getattr(sys, "base_prefix", sys.prefix)}
try:
    import ensurepip, venv
    d["venv"] = True
except Exception:
    d["venv"] = False
try:
    import importlib.util, os, re
    spec = importlib.util.find_spec("torch")  # finds it without importing it (fast)
    if spec is not None and spec.origin:
        with open(os.path.join(os.path.dirname(spec.origin), "version.py")) as f:
            m = re.search(r"^cuda\b[^=]*=\s*['\"]([0-9.]+)['\"]", f.read(), re.M)
        d["torch_cuda"] = m.group(1) if m else None
except Exception:
    pass
try:
    from importlib.metadata import version, PackageNotFoundError
    for pkg in ("torch", "flash-attn", "ninja", "transformers", "pip"):
        try:
            d[pkg] = version(pkg)
        except PackageNotFoundError:
            d[pkg] = None
except Exception:
    pass
print(json.dumps(d))
PYEOF
)
pyinfo() { if [ -x "$1" ]; then $T "$1" -c "$PYSNIP" 2>/dev/null || echo '{"broken": true}'; else echo '{"missing": true}'; fi; }

run probe-version echo "$PROBE_VERSION"
run uname uname -srm
run os-release cat /etc/os-release
sec glibc; { getconf GNU_LIBC_VERSION 2>/dev/null || ldd --version 2>&1 | head -n 1; }; endsec glibc $?
run nproc nproc
sec meminfo; grep -E '^(MemTotal|MemAvailable|SwapTotal):' /proc/meminfo 2>&1; endsec meminfo $?
sec disk; d="$WORKDIR"; while [ ! -d "$d" ]; do d=$(dirname "$d"); done; df -Pk "$d" 2>&1; endsec disk $?
# One value a section, printed as it is: a path with a newline stays one value.
sec home; printf '%s' "$HOME"; endsec home 0
sec workdir; printf '%s' "$WORKDIR"; endsec workdir 0
sec workdir-exists; [ -d "$WORKDIR" ] && echo yes; endsec workdir-exists 0
sec which; for t in $TOOLS; do printf '%s=%s\n' "$t" "$(command -v "$t" 2>/dev/null)"; done; endsec which 0
if command -v tmux >/dev/null 2>&1; then run tmux tmux -V; fi
# A Slurm login node: its partitions, their state, time limit, node count, GPUs (gres) and
# default time limit (what a job without --time gets).
if command -v sinfo >/dev/null 2>&1; then run sinfo $T sinfo -h -o '%P|%a|%l|%D|%G|%L'; fi

# nvidia-smi: the query (with a retry without compute_cap for old drivers), XML, header.
if command -v nvidia-smi >/dev/null 2>&1; then
  out=$($T nvidia-smi --query-gpu="$FIELDS" --format=csv,noheader,nounits 2>&1); rc=$?
  sec nvidia-smi-query; printf '%s' "$out"; endsec nvidia-smi-query $rc
  if printf '%s' "$out" | grep -q 'is not a valid field'; then
    out=$($T nvidia-smi --query-gpu="$FIELDS_NOCC" --format=csv,noheader,nounits 2>&1); rc=$?
    sec nvidia-smi-query-nocc; printf '%s' "$out"; endsec nvidia-smi-query-nocc $rc
  fi
  if [ "$rc" = 0 ]; then
    xml=$($T nvidia-smi -q -x 2>&1); xrc=$?
    sec nvidia-smi-xml; printf '%s' "$xml"; endsec nvidia-smi-xml $xrc
    if ! printf '%s' "$xml" | grep -q '<cuda_version>[0-9]'; then
      sec nvidia-smi-plain; $T nvidia-smi 2>&1 | head -n 12; endsec nvidia-smi-plain $?
    fi
  fi
else
  sec nvidia-smi-query; echo "nvidia-smi: command not found"; endsec nvidia-smi-query 127
fi

sec nvcc
n=$(command -v nvcc 2>/dev/null); [ -z "$n" ] && [ -x /usr/local/cuda/bin/nvcc ] && n=/usr/local/cuda/bin/nvcc
if [ -n "$n" ]; then printf 'path=%s\n' "$n"; $T "$n" --version 2>&1; endsec nvcc $?; else endsec nvcc 127; fi

sec conda
seen=""
c=$(command -v conda 2>/dev/null)
for exe in "$c" "${CONDA_EXE:-}" "$WORKDIR/miniconda3/bin/conda" "$WORKDIR/miniforge3/bin/conda" \
    "$HOME/miniconda3/bin/conda" "$HOME/anaconda3/bin/conda" "$HOME/miniforge3/bin/conda" \
    "$HOME/mambaforge/bin/conda" "/opt/conda/bin/conda" "/opt/miniconda3/bin/conda" "/opt/miniforge3/bin/conda"; do
  [ -n "$exe" ] && [ -x "$exe" ] || continue
  p=$(cd "$(dirname "$exe")/.." 2>/dev/null && pwd -P) || continue
  case " $seen " in *" $p "*) continue;; esac; seen="$seen $p"
  [ -x "$p/bin/conda" ] || continue
  v=$(ls "$p"/conda-meta/ 2>/dev/null | sed -n 's/^conda-\([0-9][0-9.]*\)-.*\.json$/\1/p' | head -n 1)
  tos=0; ls "$p"/conda-meta/conda-anaconda-tos-*.json >/dev/null 2>&1 && tos=1
  forge=0; grep -qs conda-forge "$p/.condarc" && forge=1
  printf 'prefix=%s version=%s tos_plugin=%s conda_forge=%s\n' "$p" "$v" "$tos" "$forge"
done
endsec conda 0

sec pythons
seen=""
for name in python3 python3.8 python3.9 python3.10 python3.11 python3.12 python3.13 python3.14; do
  p=$(command -v "$name" 2>/dev/null) || continue
  r=$(readlink -f "$p" 2>/dev/null || printf '%s' "$p")
  case " $seen " in *" $r "*) continue;; esac; seen="$seen $r"
  printf 'name=%s path=%s\n' "$name" "$p"; pyinfo "$p"
done
endsec pythons 0

sec envs; for p in "$@"; do case "$p" in /*) ;; *) p="$WORKDIR/$p" ;; esac; printf 'path=%s\n' "$p"; pyinfo "$p"; done; endsec envs 0
sec state; cat "$WORKDIR/bootstrap/state.json" 2>/dev/null; endsec state $?
sec results; for f in "$WORKDIR"/bootstrap/logs/*.result; do [ -f "$f" ] && { cat "$f"; echo; }; done; endsec results 0
sec verify; cat "$WORKDIR/bootstrap/verify.json" 2>/dev/null; endsec verify $?
sec tmux-sessions; tmux -S "$WORKDIR/tmux.sock" list-sessions -F '#{session_name}' 2>/dev/null; endsec tmux-sessions $?
# A Slurm host: this user's queued and running jobs (name|working dir): a bootstrap step's
# batch job runs from $WORKDIR/bootstrap (orchestrator/backends/slurm_steps.py).
if command -v squeue >/dev/null 2>&1; then
  sec slurm-jobs; $T squeue -h -u "$(id -un)" -o '%j|%Z' 2>&1; endsec slurm-jobs $?
fi
