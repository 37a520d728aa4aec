#!/usr/bin/env bash
# The one test command: lint, strict type check, then every test (unit, real registry, real Prometheus, Helm).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check exporter tests bench deploy dashboards
python3 -m ruff format --check exporter
# Tests, benchmarks and the generators of deploy/ and dashboards/ are held to the same standard as the
# service. deploy/ and dashboards/ are folders, not packages: explicit package bases name their modules by
# path (deploy.prometheus.build, dashboards.build) so the two build.py files do not clash.
python3 -m mypy --strict --explicit-package-bases exporter tests bench deploy dashboards
python3 -m pytest -q "$@"
