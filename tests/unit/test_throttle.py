"""The one rule for log lines about events that repeat (`logs.Throttle`), and its three users' shape of it."""

from __future__ import annotations

import logging

import pytest

from channels_rabbitmq_threaded._io.logs import REPEAT_LOG_WINDOW, Due, RepeatedWarning, Throttle


def test_the_first_event_of_a_key_is_due_at_once_then_once_per_window_with_the_count() -> None:
    throttle: Throttle[str] = Throttle(10.0)
    assert throttle.due("a", 100.0) == Due(0, None)
    for now in (101.0, 105.0, 109.9):
        assert throttle.due("a", now) is None
        throttle.count("a")
    assert throttle.due("a", 110.0) == Due(3, 10.0)
    assert throttle.due("a", 111.0) is None


def test_keys_are_throttled_apart() -> None:
    throttle: Throttle[str] = Throttle(10.0)
    assert throttle.due("a", 0.0) == Due(0, None)
    assert throttle.due("b", 1.0) == Due(0, None)
    assert throttle.due("a", 2.0) is None


def test_counts_are_taken_for_a_summary_once() -> None:
    throttle: Throttle[str] = Throttle(5.0)
    throttle.due("a", 0.0)
    throttle.count("a")
    throttle.count("a")
    throttle.count("b")
    assert throttle.take_counts() == {"a": 2, "b": 1}
    assert throttle.take_counts() == {}
    assert throttle.due("a", 5.0) == Due(0, 5.0)  # what the summary reported is not reported again


def test_forget_makes_the_next_event_news() -> None:
    throttle: Throttle[str] = Throttle(5.0)
    throttle.due("a", 0.0)
    throttle.count("a")
    throttle.forget()
    assert throttle.due("a", 1.0) == Due(0, None)


def test_a_repeated_warning_warns_once_per_window_and_says_how_many_it_passed_over(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter([0.0, 1.0, 2.0, REPEAT_LOG_WINDOW + 1.0, REPEAT_LOG_WINDOW + 2.0])
    monkeypatch.setattr("channels_rabbitmq_threaded._io.logs.time.monotonic", lambda: next(clock))
    logger = logging.getLogger("test.repeated")
    warning = RepeatedWarning(logger)
    with caplog.at_level(logging.DEBUG, logger="test.repeated"):
        for kind in ("refused", "refused", "refused", "refused", "timeout"):
            warning.log(kind, "connect failed: %s", kind, extra={"event": "link_failed"})
    warnings = [(record.getMessage(), record.count) for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == [
        ("connect failed: refused", 1),
        (f"connect failed: refused (2 more like it in the last {REPEAT_LOG_WINDOW + 1:.0f}s)", 3),
        ("connect failed: timeout", 1),
    ]
    assert sum(record.levelno == logging.DEBUG for record in caplog.records) == 2
