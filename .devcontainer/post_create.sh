#!/usr/bin/env bash
# Codespaces / VS Code Dev Containers run this once after creating the container (a CPU machine, Python 3.11).
# It fills .venv with the pinned environment, as `make install` would, but from the Binder lock: the same versions
# with CPU-only PyTorch (about 2 GB instead of 6.6 GB), then marks it installed so `make start`, `make lab` and
# `make test` use it as it is. tests/test_devcontainer.py checks this file against the pins.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r binder/requirements.txt
.venv/bin/python -m pip install -q --no-deps -e .
touch .venv/.installed
sudo apt-get update -q && sudo apt-get install -y -q chromium   # for the browser tests (make test)
echo "Ready: make lab (lessons on port 8888), make start (apps on port 8866), make test."
