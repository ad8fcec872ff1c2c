#!/usr/bin/env bash
# Idempotent set-up: Debian packages, a virtualenv in .venv, the Python packages.
# Safe to run again; each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(chromium ffmpeg tesseract-ocr espeak-ng fonts-dejavu-core fonts-liberation postgresql
  redis-server webext-ublock-origin-chromium)
PYTHON=${PYTHON:-python3.11}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages (first time: several minutes)"
  .venv/bin/pip install -q --upgrade pip
  # The CPU build of torch first: anything that depends on torch would otherwise pull a CUDA build.
  .venv/bin/pip install -q "torch==2.13.0"
  .venv/bin/pip install -q -e ".[dev]"
  # PDF partitioning imports unstructured-inference; its declared dependencies (a CUDA torch,
  # timm, opencv-python) are not needed for the fast strategy, so it comes without them.
  .venv/bin/pip install -q --no-deps "unstructured-inference==1.6.12"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# The embedding model's ONNX export, once per machine (a no-op when it is there).
.venv/bin/media-assets prepare-models >/dev/null
# The demo's uncaptioned videos are generated here (espeak-ng voices over ffmpeg slides).
.venv/bin/python -m media_assets.demo.media data/demo-media >/dev/null
echo "setup: ready"
