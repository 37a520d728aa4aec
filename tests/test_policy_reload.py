"""PolicyReloader: initial load, change detection (files, ConfigMap symlink swaps), last good set kept."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from exporter.metrics import ServiceMetrics
from exporter.policy import PolicyLoadError
from exporter.policy.reload import PolicyReloader
from tests.test_policy_builders import WALKTHROUGH_POLICY, policy


def _metrics() -> ServiceMetrics:
    return ServiceMetrics(CollectorRegistry())


def _value(metrics: ServiceMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def _replace(path: Path, text: str) -> None:
    """Write atomically, as editors and config tools do (new inode)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _names(reloader: PolicyReloader) -> list[str]:
    return [p.name for p in reloader.current().policies]


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "policy.yaml").write_text(WALKTHROUGH_POLICY.read_text())
    return directory


def test_initial_load_sets_metrics(policy_dir: Path) -> None:
    metrics = _metrics()
    (policy_dir / "team.yaml").write_text(yaml.safe_dump(policy(kind="Policy", name="t", namespace="a")))
    reloader = PolicyReloader([policy_dir], metrics)
    loaded = reloader.load_initial()
    assert loaded is reloader.current()
    assert sorted(_names(reloader)) == ["check-image-signature", "t"]
    assert _value(metrics, "trustwatch_policies_loaded", kind="ClusterPolicy") == 1
    assert _value(metrics, "trustwatch_policies_loaded", kind="Policy") == 1
    assert _value(metrics, "trustwatch_policy_last_load_success") == 1
    assert _value(metrics, "trustwatch_policy_load_errors_total") == 0


def test_invalid_initial_set_raises_and_counts(policy_dir: Path) -> None:
    metrics = _metrics()
    (policy_dir / "bad.yaml").write_text(yaml.safe_dump(policy(name="bad", validationFailureAction="Block")))
    reloader = PolicyReloader([policy_dir], metrics)
    with pytest.raises(
        PolicyLoadError, match=r"bad.yaml, document 1, ClusterPolicy bad: spec.validationFailure"
    ):
        reloader.load_initial()
    with pytest.raises(RuntimeError, match="load_initial"):
        reloader.current()
    assert _value(metrics, "trustwatch_policy_load_errors_total") == 1
    assert _value(metrics, "trustwatch_policy_last_load_success") == 0


def test_no_change_no_reload(policy_dir: Path) -> None:
    reloader = PolicyReloader([policy_dir], _metrics())
    first = reloader.load_initial()
    assert reloader.check_once() is False
    assert reloader.current() is first


def test_valid_change_is_swapped_in(policy_dir: Path) -> None:
    reloader = PolicyReloader([policy_dir], _metrics())
    first = reloader.load_initial()
    _replace(policy_dir / "policy.yaml", yaml.safe_dump(policy(name="replacement")))
    assert reloader.check_once() is True
    assert _names(reloader) == ["replacement"]
    assert reloader.current().version != first.version
    assert reloader.current().loaded_at >= first.loaded_at


def test_in_place_edit_is_detected(policy_dir: Path) -> None:
    reloader = PolicyReloader([policy_dir], _metrics())
    reloader.load_initial()
    target = policy_dir / "policy.yaml"
    before = target.stat()
    target.write_text(yaml.safe_dump(policy(name="edited")))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert reloader.check_once() is True
    assert _names(reloader) == ["edited"]


def test_invalid_change_keeps_last_good_set_and_is_reported_once(
    policy_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = _metrics()
    reloader = PolicyReloader([policy_dir], metrics)
    good = reloader.load_initial()
    keyless = policy(name="keyless")
    keyless["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"][0] = {
        "keyless": {"rekor": {"ignoreTlog": True}}
    }
    _replace(policy_dir / "policy.yaml", yaml.safe_dump(keyless))
    assert reloader.check_once() is False
    assert reloader.check_once() is False
    assert reloader.current() is good
    assert _value(metrics, "trustwatch_policy_load_errors_total") == 1
    assert _value(metrics, "trustwatch_policy_last_load_success") == 0
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "keeping the last good" in record.getMessage()
    assert "entries[0].keyless" in record.__dict__["error"]
    # a second, different broken version counts again; the fix is picked up
    _replace(policy_dir / "policy.yaml", "kind: [\n")
    assert reloader.check_once() is False
    assert _value(metrics, "trustwatch_policy_load_errors_total") == 2
    _replace(policy_dir / "policy.yaml", yaml.safe_dump(policy(name="fixed")))
    assert reloader.check_once() is True
    assert _names(reloader) == ["fixed"]
    assert _value(metrics, "trustwatch_policy_last_load_success") == 1


def test_added_and_removed_files(policy_dir: Path) -> None:
    metrics = _metrics()
    reloader = PolicyReloader([policy_dir], metrics)
    reloader.load_initial()
    (policy_dir / "extra.yml").write_text(yaml.safe_dump(policy(name="extra")))
    assert reloader.check_once() is True
    assert sorted(_names(reloader)) == ["check-image-signature", "extra"]
    (policy_dir / "policy.yaml").unlink()
    (policy_dir / "extra.yml").unlink()
    assert reloader.check_once() is True
    assert _names(reloader) == []
    assert _value(metrics, "trustwatch_policies_loaded", kind="ClusterPolicy") == 0


@pytest.mark.parametrize("emptied", ["", "null\n", "---\n", "---\n---\n", "# all commented out\n"])
def test_a_file_emptied_of_its_policies_is_refused(
    policy_dir: Path, caplog: pytest.LogCaptureFixture, emptied: str
) -> None:
    metrics = _metrics()
    (policy_dir / "other.yaml").write_text(yaml.safe_dump(policy(name="other")))
    reloader = PolicyReloader([policy_dir], metrics)
    good = reloader.load_initial()
    _replace(policy_dir / "policy.yaml", emptied)
    assert reloader.check_once() is False
    assert reloader.current() is good
    assert _value(metrics, "trustwatch_policy_load_errors_total") == 1
    assert _value(metrics, "trustwatch_policy_last_load_success") == 0
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "policy.yaml: holds no policy any more" in record.__dict__["error"]
    assert "delete the file" in record.__dict__["error"]
    # deleting the file is the deliberate way to remove its policies
    (policy_dir / "policy.yaml").unlink()
    assert reloader.check_once() is True
    assert _names(reloader) == ["other"]
    assert _value(metrics, "trustwatch_policy_last_load_success") == 1


def test_files_that_never_held_policies_may_stay_empty(policy_dir: Path) -> None:
    reloader = PolicyReloader([policy_dir], _metrics())
    reloader.load_initial()
    (policy_dir / "placeholder.yaml").write_text("")
    assert reloader.check_once() is True
    _replace(policy_dir / "policy.yaml", yaml.safe_dump(policy(name="replacement")))
    assert reloader.check_once() is True
    assert _names(reloader) == ["replacement"]


def test_missing_source_keeps_last_good_set(tmp_path: Path) -> None:
    single = tmp_path / "policy.yaml"
    single.write_text(WALKTHROUGH_POLICY.read_text())
    metrics = _metrics()
    reloader = PolicyReloader([single], metrics)
    good = reloader.load_initial()
    single.unlink()
    assert reloader.check_once() is False
    assert reloader.check_once() is False
    assert reloader.current() is good
    assert _value(metrics, "trustwatch_policy_load_errors_total") == 1


def _configmap_version(mount: Path, name: str, text: str) -> None:
    """Publish a new ConfigMap payload the way the kubelet does: new timestamped dir, atomic ..data swap."""
    payload = mount / f"..{name}"
    payload.mkdir()
    (payload / "policies.yaml").write_text(text)
    link = mount / "..data_tmp"
    link.symlink_to(payload.name)
    link.replace(mount / "..data")
    visible = mount / "policies.yaml"
    if not visible.is_symlink():
        visible.symlink_to("..data/policies.yaml")


def test_configmap_symlink_swap_is_detected(tmp_path: Path) -> None:
    mount = tmp_path / "mount"
    mount.mkdir()
    _configmap_version(mount, "2026_11_26_14_00_00.1", yaml.safe_dump(policy(name="v1")))
    reloader = PolicyReloader([mount], _metrics())
    reloader.load_initial()
    assert _names(reloader) == ["v1"]
    _configmap_version(mount, "2026_11_26_14_05_00.2", yaml.safe_dump(policy(name="v2")))
    assert reloader.check_once() is True
    assert _names(reloader) == ["v2"]


async def _poll_until_names(reloader: PolicyReloader, names: list[str]) -> None:
    """Poll (with a 10 s deadline, not a fixed sleep) until the policy set in force has ``names``."""
    deadline = asyncio.get_running_loop().time() + 10
    for _ in range(100_000):
        if _names(reloader) == names or asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.01)


async def test_run_polls_until_cancelled(policy_dir: Path) -> None:
    reloader = PolicyReloader([policy_dir], _metrics(), interval=0.01)
    reloader.load_initial()
    task = asyncio.create_task(reloader.run())
    _replace(policy_dir / "policy.yaml", yaml.safe_dump(policy(name="polled")))

    try:
        await _poll_until_names(reloader, ["polled"])
    finally:
        task.cancel()
    assert _names(reloader) == ["polled"]
    with pytest.raises(asyncio.CancelledError):
        await task


def test_interval_must_be_positive(policy_dir: Path) -> None:
    with pytest.raises(ValueError, match="interval"):
        PolicyReloader([policy_dir], _metrics(), interval=0)


async def test_run_survives_an_unexpected_error(
    policy_dir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    reloader = PolicyReloader([policy_dir], _metrics(), interval=0.01)
    reloader.load_initial()
    real_check = reloader.check_once
    calls: list[int] = []

    def flaky_check() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk went away")
        return real_check()

    monkeypatch.setattr(reloader, "check_once", flaky_check)
    _replace(policy_dir / "policy.yaml", yaml.safe_dump(policy(name="after-error")))
    task = asyncio.create_task(reloader.run())
    try:
        await _poll_until_names(reloader, ["after-error"])
    finally:
        task.cancel()
    assert _names(reloader) == ["after-error"]
    assert any("policy reload check failed" in r.getMessage() for r in caplog.records)
