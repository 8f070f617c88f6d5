#!/usr/bin/env bash
# Install Miniconda or Miniforge into PREFIX, unattended, after checking the installer's sha256.
#
#   install_conda.sh --flavor miniconda|miniforge --prefix PREFIX --url URL [--sha256 HEX]
#                    --download-dir DIR
#
# Idempotent: an existing PREFIX/bin/conda is kept. The installer runs with -b (batch: no
# prompts, licence accepted, shell rc files NOT touched) and -p PREFIX; `conda init` is
# never run, so the user's ~/.bashrc is left alone. Without --sha256 the checksum is looked
# up next to the installer (Miniforge: URL.sha256; Miniconda: the repo index page).
set -euo pipefail

flavor=""; prefix=""; url=""; sha=""; dl=""
while [ $# -gt 0 ]; do
  case "$1" in
    --flavor) flavor="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --url) url="$2"; shift 2 ;;
    --sha256) sha="$2"; shift 2 ;;
    --download-dir) dl="$2"; shift 2 ;;
    *) echo "install_conda.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$flavor" ] && [ -n "$prefix" ] && [ -n "$url" ] && [ -n "$dl" ] || {
  echo "install_conda.sh: --flavor, --prefix, --url and --download-dir are required" >&2; exit 2; }
case "$prefix" in *" "*) echo "error: the conda prefix must not contain spaces: $prefix" >&2; exit 2 ;; esac

if [ -x "$prefix/bin/conda" ]; then
  echo "conda is already installed at $prefix"
  "$prefix/bin/conda" --version
  exit 0
fi

download() {  # download URL FILE
  case "$1" in
    file://*) cp "${1#file://}" "$2" ;;
    *)
      if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 3 --connect-timeout 30 -o "$2" "$1"
      elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$1"
      else
        echo "error: neither curl nor wget is installed: cannot download $1" >&2; return 1
      fi ;;
  esac
}
sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

mkdir -p "$dl"
name=$(basename "$url")
file="$dl/$name"
echo "downloading $url"
download "$url" "$file.part"
mv -f "$file.part" "$file"

if [ -z "$sha" ]; then
  case "$flavor" in
    miniforge)
      download "$url.sha256" "$file.sha256"
      sha=$(grep -oE '[0-9a-f]{64}' "$file.sha256" | head -n 1 || true) ;;
    miniconda)
      download "$(dirname "$url")/" "$dl/miniconda-index.html"
      sha=$(grep -A 8 -F ">$name<" "$dl/miniconda-index.html" | grep -oE '[0-9a-f]{64}' | head -n 1 || true) ;;
  esac
fi
if [ -z "$sha" ]; then
  echo "error: no sha256 found for $name; set conda.installer_sha256 in the env spec" >&2
  exit 4
fi
actual=$(sha256_of "$file")
if [ "$actual" != "$sha" ]; then
  echo "error: sha256 mismatch for $name: expected $sha, got $actual" >&2
  rm -f "$file"
  exit 5
fi
echo "sha256 ok: $sha"

update=()
[ -e "$prefix" ] && update=(-u)   # a half-finished earlier install: let the installer update it
echo "running: bash $name -b ${update[*]+${update[*]}} -p $prefix"
bash "$file" -b ${update[@]+"${update[@]}"} -p "$prefix"
"$prefix/bin/conda" --version
echo "installed $flavor at $prefix (shell rc files untouched; use $prefix/bin/conda by its path)"
