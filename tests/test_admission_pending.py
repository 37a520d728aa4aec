"""Results held between /mutate and /validate: taken oldest first, expired, bounded."""

from __future__ import annotations

from exporter.admission.pending import PendingResults, object_key


def test_values_are_taken_oldest_first_and_expire() -> None:
    now = [0.0]
    pending: PendingResults[str] = PendingResults(ttl=30, clock=lambda: now[0])
    pending.put("pod", "first")
    now[0] = 10
    pending.put("pod", "second")
    pending.put("other", "x")
    assert pending.take("pod") == "first"
    now[0] = 35  # "first" would have expired; "second" has not
    assert pending.take("pod") == "second"
    assert pending.take("pod") is None
    now[0] = 41
    assert pending.take("other") is None  # expired
    assert len(pending) == 0


def test_the_oldest_entries_give_way_when_full() -> None:
    pending: PendingResults[int] = PendingResults(max_entries=2, clock=lambda: 0.0)
    for number in range(3):
        pending.put(number, number)
    assert len(pending) == 2
    assert [pending.take(number) for number in range(3)] == [None, 1, 2]


def test_an_object_is_the_same_before_and_after_the_api_server_named_it() -> None:
    before = {"kind": "Pod", "metadata": {"generateName": "web-7d9f8-"}}
    after = {"kind": "Pod", "metadata": {"generateName": "web-7d9f8-", "name": "web-7d9f8-x2k4q", "uid": "u"}}
    assert object_key("prod", before, "CREATE", ["a@sha256:1"]) == object_key(
        "prod", after, "CREATE", ["a@sha256:1"]
    )
    assert object_key("prod", before, "CREATE", ["a@sha256:1"]) != object_key(
        "dev", after, "CREATE", ["a@sha256:1"]
    )
    named = {"kind": "Pod", "metadata": {"name": "app"}}
    assert object_key("prod", named, "CREATE", []) != object_key("prod", before, "CREATE", [])
