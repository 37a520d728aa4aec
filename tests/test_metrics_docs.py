"""docs/metrics.md explains every metric of exporter/metrics.py, and its generated table is current."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from exporter.metrics import ALL_METRICS, MetricSpec

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "metrics.md"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("metrics_table", ROOT / "deploy" / "metrics_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _prose() -> str:
    return DOC.read_text().split(_generator().BEGIN)[0]


def test_generated_table_is_current() -> None:
    generator = _generator()
    text = DOC.read_text()
    assert generator.render(text) == text, "docs/metrics.md is stale: run python3 deploy/metrics_table.py"


def test_table_has_one_row_per_metric_with_its_labels() -> None:
    table = DOC.read_text().split(_generator().BEGIN)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(ALL_METRICS)
    for spec, row in zip(ALL_METRICS, rows, strict=True):
        assert f"`{spec.series_names()[0]}`" in row
        assert all(f"`{label}`" in row for label in spec.labels)


@pytest.mark.parametrize("spec", ALL_METRICS, ids=lambda spec: spec.name)
def test_every_metric_is_explained_in_the_prose(spec: MetricSpec) -> None:
    """Beyond the generated row, each metric is discussed where users read how to query it."""
    names = [spec.name, *spec.series_names()]
    assert any(re.search(rf"\b{re.escape(name)}\b", _prose()) for name in names), spec.name


def test_render_refuses_a_document_without_markers() -> None:
    with pytest.raises(SystemExit, match="lacks the markers"):
        _generator().render("# metrics\nno table here\n")
