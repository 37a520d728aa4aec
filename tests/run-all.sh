#!/usr/bin/env bash
# The one test command: lint, strict type check, then every test (unit, real registry, real Prometheus, Helm).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check exporter tests bench
python3 -m ruff format --check exporter
python3 -m mypy --strict exporter
python3 -m pytest -q "$@"
