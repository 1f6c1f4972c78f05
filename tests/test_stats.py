"""Live counters while a run goes, and the summary printed at its end."""

from __future__ import annotations

from engine.events import Event
from engine.stats import CountersReport, LiveCounters, RunSummary
from engine.testing import event

SECOND = 1_000_000


def events(event_type: str, source: str, n: int) -> list[Event]:
    return [event(0.0, event_type, source) for _ in range(n)]


def test_report_counts_by_type_and_source_within_the_window() -> None:
    """Every event counted within the window shows in the totals."""
    counters = LiveCounters(window_us=10 * SECOND, top=5)
    counters.count(events("ERROR", "web-1", 2) + events("INFO", "db-1", 1), 0)
    counters.count(events("INFO", "web-1", 3), 4 * SECOND)

    report = counters.report(5 * SECOND)

    assert report.total == 6
    assert report.by_type == [("INFO", 4), ("ERROR", 2)]
    assert report.by_source == [("web-1", 5), ("db-1", 1)]


def test_report_span_is_the_run_age_until_the_window_is_full() -> None:
    """A young run measures rates over its age, then over the whole window."""
    counters = LiveCounters(window_us=10 * SECOND, top=5)
    counters.count(events("INFO", "a", 1), 2 * SECOND)

    assert counters.report(6 * SECOND).window_us == 4 * SECOND
    assert counters.report(30 * SECOND).window_us == 10 * SECOND


def test_one_second_bucket_leaves_once_the_window_has_passed_its_start() -> None:
    """A bucket for second s is kept while now - window < s, dropped after."""
    counters = LiveCounters(window_us=10 * SECOND, top=5)
    counters.count(events("OLD", "a", 2), 5 * SECOND + 300_000)
    counters.count(events("NEW", "a", 1), 9 * SECOND)

    kept = counters.report(15 * SECOND - 1)
    dropped = counters.report(15 * SECOND)

    assert kept.by_type == [("OLD", 2), ("NEW", 1)]
    assert dropped.by_type == [("NEW", 1)]
    assert dropped.total == 1


def test_everything_expires_after_a_quiet_window() -> None:
    """With no new events, the counters drain to zero."""
    counters = LiveCounters(window_us=10 * SECOND, top=5)
    counters.count(events("INFO", "a", 4), 0)

    report = counters.report(60 * SECOND)

    assert (report.total, report.by_type, report.by_source) == (0, [], [])


def test_report_keeps_only_the_top_entries() -> None:
    """Only the ``top`` most frequent types and sources are returned."""
    counters = LiveCounters(window_us=10 * SECOND, top=2)
    batch = (
        events("A", "s1", 1)
        + events("B", "s2", 3)
        + events("C", "s3", 2)
        + events("D", "s2", 1)
    )
    counters.count(batch, 0)

    report = counters.report(SECOND)

    assert report.total == 7
    assert report.by_type == [("B", 3), ("C", 2)]
    assert report.by_source == [("s2", 4), ("s3", 2)]


def test_counters_report_render_shows_rates_per_second() -> None:
    """Counts are turned into per-second rates over the measured span."""
    report = CountersReport(
        window_us=10 * SECOND,
        total=30,
        by_type=[("ERROR", 20), ("INFO", 10)],
        by_source=[("web-1", 25)],
    )

    text = report.render()

    assert "last 10s" in text
    assert "3.0 events/s" in text
    assert "ERROR=2.0/s" in text
    assert "INFO=1.0/s" in text
    assert "web-1=2.5/s" in text


def test_counters_report_render_of_nothing() -> None:
    """An empty report renders zero rates and dashes, without dividing by 0."""
    report = CountersReport(window_us=0, total=0, by_type=[], by_source=[])

    text = report.render()

    assert "0.0 events/s" in text
    assert "by type: -" in text
    assert "top sources: -" in text
    assert report.rate(5) == 0.0


def summary_with_data() -> RunSummary:
    summary = RunSummary()
    summary.count_events(
        events("INFO", "web-1", 4)
        + events("ERROR", "web-2", 3)
        + events("INFO", "db-1", 2)
        + events("WARN", "db-2", 1)
        + events("INFO", "cache-1", 1)
    )
    summary.alerts[("ERROR_BURST", "firing")] += 2
    summary.alerts[("ERROR_BURST", "resolved")] += 1
    summary.alerts[("WARN_STORM", "firing")] += 1
    summary.bad_by_reason["not_json"] += 3
    summary.bad_by_reason["bad_timestamp"] += 1
    summary.late_dropped = 5
    summary.elapsed_us = 2_500_000
    return summary


def test_count_events_counts_totals_types_and_sources() -> None:
    """count_events adds to every tally."""
    summary = summary_with_data()

    assert summary.events == 11
    assert summary.by_type == {"INFO": 7, "ERROR": 3, "WARN": 1}
    assert summary.by_source["web-1"] == 4
    assert len(summary.by_source) == 5


def test_summary_first_line_gives_the_totals() -> None:
    """Events, time, notifications, late and bad totals lead the summary."""
    first = summary_with_data().render().splitlines()[0]

    assert "11 events" in first
    assert "2.5s" in first
    assert "4 alert notifications" in first
    assert "5 late dropped" in first
    assert "4 bad" in first


def test_summary_lists_every_event_type_by_count() -> None:
    """All types are listed, most frequent first."""
    text = summary_with_data().render()

    assert "INFO 7, ERROR 3, WARN 1" in text


def test_summary_lists_top_sources_and_how_many_more() -> None:
    """Sources beyond the top N are summed up as '+N more'."""
    text = summary_with_data().render(top=2)

    [line] = [line for line in text.splitlines() if "by source" in line]
    assert "web-1 4, web-2 3" in line
    assert "db-1" not in line
    assert "(+3 more)" in line


def test_summary_has_no_more_marker_when_all_sources_fit() -> None:
    """With top at least the number of sources, nothing is elided."""
    text = summary_with_data().render(top=5)

    assert "more" not in text


def test_summary_lists_alerts_by_rule_and_status() -> None:
    """Alert notifications are broken down by rule and status."""
    text = summary_with_data().render()

    assert "ERROR_BURST 2 firing / 1 resolved" in text
    assert "WARN_STORM 1 firing / 0 resolved" in text


def test_summary_lists_bad_events_by_reason() -> None:
    """Bad events are broken down by reason."""
    text = summary_with_data().render()

    [line] = [line for line in text.splitlines() if "bad events" in line]
    assert "not_json 3" in line
    assert "bad_timestamp 1" in line


def test_summary_mentions_optional_tallies_only_when_present() -> None:
    """Suppressed, late-included and sink-failure lines appear when non-zero."""
    quiet = RunSummary().render()
    busy = RunSummary(late_included=2)
    busy.suppressed_by_rule["ERROR_BURST"] += 3
    busy.sink_failures["sinks[1] (jsonl)"] += 1

    text = busy.render()

    assert "suppressed" not in quiet
    assert "late events included" not in quiet
    assert "sink failures" not in quiet
    assert "bad events" not in quiet
    assert "ERROR_BURST 3" in text
    assert "late events included: 2" in text
    assert "sinks[1] (jsonl) 1" in text


def test_empty_summary_says_none() -> None:
    """An idle run renders zeros and 'none' rather than empty lists."""
    text = RunSummary().render()

    assert "0 events" in text
    assert text.count("none") == 3


def test_summary_says_one_alert_notification_in_the_singular() -> None:
    """One notification is not written as "1 alert notifications"."""
    summary = RunSummary()
    summary.alerts[("ERROR_BURST", "firing")] += 1

    assert "1 alert notification," in summary.render()
