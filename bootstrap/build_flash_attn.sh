#!/usr/bin/env bash
# Install flash-attn into an env: a named release wheel, or a source build.
#
#   build_flash_attn.sh --python ENV/bin/python --version V --wheel-url URL --wheel NAME
#   build_flash_attn.sh --python ENV/bin/python --version V --source
#                       [--cuda-home DIR | --conda CONDA --conda-cuda X.Y]
#                       [--fetch-only DIR | --wheelhouse DIR]
#
# A Slurm cluster's compute nodes often have no internet, so there a source build is two
# steps: --fetch-only DIR, on the login node, installs the build tools (and conda's nvcc)
# into the env on the shared filesystem and downloads flash-attn's sdist into DIR; then
# --wheelhouse DIR, on a compute node, downloads nothing: it builds from DIR's sdist.
#
# Source builds read MAX_JOBS, NVCC_THREADS, FLASH_ATTN_CUDA_ARCHS and
# FLASH_ATTENTION_FORCE_BUILD=TRUE from the environment (the controller sets them).
# Order matters (flash-attn issues #246, #1421): torch first, then packaging/psutil/ninja,
# then flash-attn with --no-build-isolation --no-deps. Ends with an import check, so an
# ABI mismatch ("undefined symbol") fails here and not in the first job.
set -euo pipefail

py=""; version=""; wheel_url=""; wheel=""; source=0; cuda_home=""; conda=""; conda_cuda=""; fetch=""; house=""
while [ $# -gt 0 ]; do
  case "$1" in
    --python) py="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --wheel-url) wheel_url="$2"; shift 2 ;;
    --wheel) wheel="$2"; shift 2 ;;
    --source) source=1; shift ;;
    --cuda-home) cuda_home="$2"; shift 2 ;;
    --conda) conda="$2"; shift 2 ;;
    --conda-cuda) conda_cuda="$2"; shift 2 ;;
    --fetch-only) fetch="$2"; shift 2 ;;
    --wheelhouse) house="$2"; shift 2 ;;
    *) echo "build_flash_attn.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$py" ] && [ -n "$version" ] || { echo "build_flash_attn.sh: --python (executable) and --version are required" >&2; exit 2; }
envbin=$(dirname "$py")
envprefix=$(dirname "$envbin")
export PATH="$envbin:$PATH"

echo "== torch in the env"
torch_facts=$("$py" -c 'import sys, platform, torch
print(torch.__version__.split("+")[0], torch.version.cuda or "none", str(torch._C._GLIBCXX_USE_CXX11_ABI).upper(),
      "cp%d%d" % sys.version_info[:2], platform.machine())')
echo "torch version / CUDA / cxx11abi / python / arch: $torch_facts"
read -r torch_v torch_cuda torch_abi py_tag arch <<< "$torch_facts"
if [ "$torch_cuda" = none ]; then
  echo "error: torch $torch_v is a CPU build: flash-attn needs a CUDA torch" >&2; exit 3
fi

if [ -n "$house" ]; then
  echo "== build requirements: installed by the fetch step (no downloads here)"
else
  echo "== build requirements (packaging psutil ninja einops)"
  "$py" -m pip install packaging psutil ninja einops wheel setuptools
fi
echo "== ninja"
if ! ninja --version; then
  echo "error: ninja --version failed: could not find ninja (a build without it takes hours)" >&2; exit 4
fi
[ -n "$fetch" ] || "$py" -m pip uninstall -y flash-attn >/dev/null 2>&1 || true  # (a fetch keeps the old one)

if [ -n "$wheel_url" ]; then
  torch_minor=$(echo "$torch_v" | cut -d. -f1,2)
  # The controller predicts the C++11 ABI flag from torch's version (pip wheels: TRUE from 2.7);
  # every release publishes both ABIs, so a wrong guess only swaps the flag in the name.
  case "$wheel" in
    *"cxx11abiTRUE"*) planned_abi=TRUE ;;
    *) planned_abi=FALSE ;;
  esac
  if [ "$planned_abi" != "$torch_abi" ]; then
    echo "note: this torch uses cxx11abi $torch_abi (planned $planned_abi): taking that wheel instead"
    wheel="${wheel/cxx11abi$planned_abi/cxx11abi$torch_abi}"
    wheel_url="${wheel_url/cxx11abi$planned_abi/cxx11abi$torch_abi}"
  fi
  case "$wheel" in
    *"torch${torch_minor}cxx11abi${torch_abi}-${py_tag}-${py_tag}-"*) ;;
    *) echo "error: the planned wheel $wheel does not match this env (torch $torch_minor, cxx11abi $torch_abi, $py_tag);" \
            "re-run orch bootstrap: it re-plans from the installed torch" >&2; exit 5 ;;
  esac
  echo "== installing the prebuilt wheel $wheel"
  "$py" -m pip install --no-deps --no-cache-dir "$wheel_url"
else
  [ "$source" = 1 ] || { echo "build_flash_attn.sh: give --wheel-url or --source" >&2; exit 2; }
  if [ -n "$conda_cuda" ]; then
    if [ -z "$house" ]; then
      echo "== nvcc from conda-forge: cuda-nvcc $conda_cuda into $envprefix"
      "$conda" install -y -p "$envprefix" --override-channels -c conda-forge \
        "cuda-version=$conda_cuda" cuda-nvcc cuda-cudart-dev cuda-libraries-dev
    fi
    cuda_home="$envprefix"
    for inc in "$envprefix"/targets/*/include; do
      [ -d "$inc" ] && export CPATH="$inc${CPATH:+:$CPATH}"
    done
  fi
  if [ -n "$fetch" ]; then
    echo "== downloading flash-attn $version's sdist into $fetch (the build runs where there may be no internet)"
    mkdir -p "$fetch"
    # pip reads the sdist's metadata by running its setup.py, which imports torch (so no build
    # isolation) and, unless told to skip it, looks for nvcc, which a login node may lack.
    FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE "$py" -m pip download --no-deps --no-build-isolation \
      --no-binary flash-attn --dest "$fetch" "flash-attn==$version"
    [ -e "$fetch/flash_attn-$version.tar.gz" ] || [ -e "$fetch/flash-attn-$version.tar.gz" ] || {
      echo "error: pip download left no flash-attn $version sdist in $fetch" >&2; exit 8; }
    echo "fetched: the build step installs from $fetch"
    exit 0
  fi
  if [ -z "$cuda_home" ] && [ -x /usr/local/cuda/bin/nvcc ]; then cuda_home=/usr/local/cuda; fi
  if [ -n "$cuda_home" ]; then
    export CUDA_HOME="$cuda_home"
    export PATH="$cuda_home/bin:$PATH"
  fi
  echo "== nvcc"
  if ! command -v nvcc >/dev/null 2>&1; then
    echo "error: nvcc was not found (CUDA_HOME=${CUDA_HOME:-unset})" >&2; exit 6
  fi
  nvcc --version
  nvcc_v=$(nvcc --version | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1)
  if [ "${nvcc_v%%.*}" != "${torch_cuda%%.*}" ]; then
    echo "error: The detected CUDA version ($nvcc_v) mismatches the version that was used to compile PyTorch ($torch_cuda):" \
         "the nvcc major must equal torch's CUDA major" >&2
    exit 7
  fi
  echo "== building flash-attn $version from source: MAX_JOBS=${MAX_JOBS:-?} NVCC_THREADS=${NVCC_THREADS:-?}" \
       "FLASH_ATTN_CUDA_ARCHS=${FLASH_ATTN_CUDA_ARCHS:-default} CUDA_HOME=${CUDA_HOME:-?}"
  if [ -n "$house" ]; then
    "$py" -m pip install -v --no-index --find-links "$house" --no-build-isolation --no-deps --no-cache-dir \
      "flash-attn==$version"
  else
    "$py" -m pip install -v --no-build-isolation --no-deps --no-cache-dir "flash-attn==$version"
  fi
fi

echo "== import check"
"$py" -c 'import flash_attn, flash_attn_2_cuda; print("flash_attn", flash_attn.__version__, "imports ok")'
