#!/usr/bin/env bash
# Create the bootstrap env: a venv or a conda env at PREFIX, with pip.
#
#   make_env.sh --manager venv --prefix PREFIX --python /usr/bin/python3 [--system-site-packages] [--recreate]
#   make_env.sh --manager conda|miniforge --prefix PREFIX --python 3.11 --conda CONDA
#               [--accept-tos] [--recreate]
#
# Idempotent: an existing PREFIX/bin/python is kept unless --recreate. Conda envs are
# created by path (-p), never activated; later steps call PREFIX/bin/python directly.
# miniforge: conda-forge only (--override-channels), so Anaconda's ToS does not apply.
# conda (Miniconda's defaults channels): the Anaconda ToS must have been accepted by the
# user (--accept-tos, passed only when they did); it is then recorded with `conda tos accept`.
set -euo pipefail

manager=""; prefix=""; python=""; conda=""; ssp=0; tos=0; recreate=0
while [ $# -gt 0 ]; do
  case "$1" in
    --manager) manager="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    --conda) conda="$2"; shift 2 ;;
    --system-site-packages) ssp=1; shift ;;
    --accept-tos) tos=1; shift ;;
    --recreate) recreate=1; shift ;;
    *) echo "make_env.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$manager" ] && [ -n "$prefix" ] && [ -n "$python" ] || {
  echo "make_env.sh: --manager, --prefix and --python are required" >&2; exit 2; }
case "$prefix" in
  */envs/*) ;;
  *) echo "error: refusing env prefix $prefix (expected .../envs/NAME)" >&2; exit 2 ;;
esac

if [ "$recreate" = 1 ] && [ -e "$prefix" ]; then
  echo "removing the old env at $prefix (its spec changed)"
  rm -rf "$prefix"
fi

case "$manager" in
  venv)
    if [ -x "$prefix/bin/python" ]; then
      echo "venv exists at $prefix"
    else
      args=()
      [ "$ssp" = 1 ] && args=(--system-site-packages)
      echo "creating venv: $python -m venv ${args[*]+${args[*]}} $prefix"
      "$python" -m venv ${args[@]+"${args[@]}"} "$prefix"
    fi ;;
  conda|miniforge)
    [ -x "$conda" ] || { echo "error: conda not found at $conda" >&2; exit 3; }
    export CONDA_ALWAYS_YES=true
    channels=()
    if [ "$manager" = miniforge ]; then
      channels=(--override-channels -c conda-forge)
    elif [ "$tos" = 1 ]; then
      export CONDA_PLUGINS_AUTO_ACCEPT_TOS=yes
      if "$conda" tos --help >/dev/null 2>&1; then
        for ch in https://repo.anaconda.com/pkgs/main https://repo.anaconda.com/pkgs/r; do
          "$conda" tos accept --override-channels --channel "$ch"
        done
      fi
    fi
    if [ -x "$prefix/bin/python" ]; then
      echo "conda env exists at $prefix"
    else
      echo "creating conda env: $conda create -y -p $prefix ${channels[*]+${channels[*]}} python=$python pip"
      "$conda" create -y -p "$prefix" ${channels[@]+"${channels[@]}"} "python=$python" pip
    fi ;;
  *) echo "make_env.sh: unknown manager $manager" >&2; exit 2 ;;
esac

"$prefix/bin/python" -c 'import sys; print("env python", sys.version.split()[0], sys.executable)'
"$prefix/bin/python" -m pip --version
