"""The ``jsonl`` source, built directly with a runtime context."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.clock import SimulatedClock
from engine.components import RuntimeContext
from engine.plugins import source_jsonl
from engine.plugins.source_jsonl import JsonlSource
from engine.timeutil import US_PER_SECOND

START_US = 1_000 * US_PER_SECOND


def make_source(
    tmp_path: Path, clock: SimulatedClock | None = None, **options: Any
) -> JsonlSource:
    context = RuntimeContext("sources[0] (jsonl)", clock or SimulatedClock(), tmp_path)
    return JsonlSource({"path": "events.jsonl", **options}, context)


def event_line(seconds: float, source: str = "web-1") -> bytes:
    event = {"timestamp": seconds, "event_type": "ERROR", "source": source}
    return json.dumps(event).encode()


def all_lines(batches: Iterator[list[bytes]]) -> list[bytes]:
    return [line for batch in batches for line in batch]


def test_reads_every_line_in_order_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines split between reads come out whole, all of them, in order."""
    monkeypatch.setattr(source_jsonl, "CHUNK_BYTES", 7)
    lines = [f'{{"n": {i}, "pad": "{"x" * (i % 5)}"}}'.encode() for i in range(200)]
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    source = make_source(tmp_path)

    batches = list(source.batches())

    assert all_lines(iter(batches)) == lines
    assert len(batches) > 1
    source.close()


def test_reads_a_file_larger_than_one_chunk(tmp_path: Path) -> None:
    """A file bigger than CHUNK_BYTES is read completely with real chunk sizes."""
    line = b'{"timestamp": 1, "event_type": "INFO", "source": "web-1"}'
    count = source_jsonl.CHUNK_BYTES // len(line) * 2 + 3
    (tmp_path / "events.jsonl").write_bytes((line + b"\n") * count)
    source = make_source(tmp_path)

    batches = list(source.batches())

    assert sum(len(batch) for batch in batches) == count
    assert all(item == line for batch in batches for item in batch)
    assert len(batches) >= 3
    source.close()


def test_final_line_without_newline_is_read(tmp_path: Path) -> None:
    """The last line counts even when the file does not end with a newline."""
    (tmp_path / "events.jsonl").write_bytes(b"first\nsecond\nlast")
    source = make_source(tmp_path)

    assert all_lines(source.batches()) == [b"first", b"second", b"last"]
    source.close()


def test_position_is_the_offset_after_the_last_complete_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """position() points just past the newline of the last whole line yielded,
    and to the end of the file once its unterminated last line is yielded, so a
    restart reads that line only once."""
    monkeypatch.setattr(source_jsonl, "CHUNK_BYTES", 4)
    (tmp_path / "events.jsonl").write_bytes("aé\nbbbbb\ncc\ntail".encode())
    # Byte offsets after each newline, counted by hand ("é" is two bytes).
    ends = {"aé".encode(): 4, b"bbbbb": 10, b"cc": 13, b"tail": 17}
    source = make_source(tmp_path)

    seen: list[tuple[list[bytes], int]] = []
    for batch in source.batches():
        complete = [ends[line] for line in batch if line in ends]
        expected = complete[-1] if complete else seen[-1][1]
        seen.append((batch, source.position()))
        assert source.position() == expected

    assert [line for batch, _ in seen for line in batch][-1] == b"tail"
    assert source.position() == 17
    source.close()


def test_blank_and_whitespace_tail_is_not_a_line(tmp_path: Path) -> None:
    """A trailing run of spaces after the last newline yields nothing."""
    (tmp_path / "events.jsonl").write_bytes(b"one\n   ")
    source = make_source(tmp_path)

    assert all_lines(source.batches()) == [b"one"]
    source.close()


def test_follow_picks_up_lines_appended_later(tmp_path: Path) -> None:
    """With follow, lines written after the end was reached are read too."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"one\n")
    source = make_source(tmp_path, follow=True)
    batches = source.batches()

    assert next(batches) == [b"one"]
    assert next(batches) == []  # at the end: nothing new yet
    with path.open("ab") as writer:
        writer.write(b"two\nthree\n")
    assert next(batches) == [b"two", b"three"]
    assert source.position() == len(b"one\ntwo\nthree\n")

    source.context.stopping.set()
    assert list(batches) == []
    source.close()


def test_follow_waits_the_poll_interval_between_empty_reads(tmp_path: Path) -> None:
    """An idle followed file is polled every poll_interval of the clock."""
    (tmp_path / "events.jsonl").write_bytes(b"")
    clock = SimulatedClock(START_US)
    source = make_source(tmp_path, clock, follow=True, poll_interval="2s")
    batches = source.batches()

    assert next(batches) == []
    assert next(batches) == []
    assert next(batches) == []

    assert clock.now_us() == START_US + 2 * 2 * US_PER_SECOND
    source.context.stopping.set()
    source.close()


def test_follow_starts_over_after_truncation(tmp_path: Path) -> None:
    """A followed file that shrinks is read again from its start."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"old-1\nold-2\nold-3\n")
    source = make_source(tmp_path, follow=True)
    batches = source.batches()
    assert next(batches) == [b"old-1", b"old-2", b"old-3"]
    assert next(batches) == []

    path.write_bytes(b"new-1\n")  # truncates, then writes less than before
    received: list[bytes] = []
    for _ in range(5):
        received += next(batches)
        if received:
            break

    assert received == [b"new-1"]
    assert source.position() == len(b"new-1\n")
    source.context.stopping.set()
    source.close()


def test_follow_stops_when_the_engine_is_stopping(tmp_path: Path) -> None:
    """Setting context.stopping ends the followed stream."""
    (tmp_path / "events.jsonl").write_bytes(b"one\n")
    source = make_source(tmp_path, follow=True)
    batches = source.batches()
    assert next(batches) == [b"one"]

    source.context.stopping.set()

    assert list(batches) == []
    source.close()


def paced_times(source: JsonlSource, clock: SimulatedClock) -> list[tuple[int, bytes]]:
    """(simulated microseconds since start, line) as each batch is yielded."""
    return [
        (clock.monotonic_us() - START_US, line)
        for batch in source.batches()
        for line in batch
    ]


def test_realtime_speed_sleeps_the_gaps_between_event_times(tmp_path: Path) -> None:
    """``speed: realtime`` yields each event when its time offset has passed."""
    lines = [event_line(50.0), event_line(51.0), event_line(53.5), event_line(53.5)]
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    clock = SimulatedClock(START_US)
    source = make_source(tmp_path, clock, speed="realtime")

    assert paced_times(source, clock) == [
        (0, lines[0]),
        (1_000_000, lines[1]),
        (3_500_000, lines[2]),
        (3_500_000, lines[3]),
    ]
    source.close()


def test_speed_factor_divides_the_gaps(tmp_path: Path) -> None:
    """``speed: 10`` replays ten times faster than the events happened."""
    lines = [event_line(50.0), event_line(51.0), event_line(53.5)]
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    clock = SimulatedClock(START_US)
    source = make_source(tmp_path, clock, speed=10)

    assert paced_times(source, clock) == [
        (0, lines[0]),
        (100_000, lines[1]),
        (350_000, lines[2]),
    ]
    source.close()


def test_iso_timestamps_are_paced_too(tmp_path: Path) -> None:
    """Pacing reads ISO-8601 timestamps as well as epoch seconds."""
    stamps = ["2026-01-01T00:00:00Z", "2026-01-01T00:00:02.250+00:00"]
    lines = [
        json.dumps({"timestamp": s, "event_type": "E", "source": "a"}).encode()
        for s in stamps
    ]
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    clock = SimulatedClock(START_US)
    source = make_source(tmp_path, clock, speed="realtime")

    assert paced_times(source, clock) == [(0, lines[0]), (2_250_000, lines[1])]
    source.close()


def test_bad_lines_pass_through_unpaced(tmp_path: Path) -> None:
    """Lines without a usable timestamp go out at once, in their place."""
    lines = [
        b"not json",
        event_line(10.0),
        b'{"timestamp": "yesterday"}',
        event_line(14.0),
        b"[1, 2]",
    ]
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    clock = SimulatedClock(START_US)
    source = make_source(tmp_path, clock, speed="realtime")

    assert paced_times(source, clock) == [
        (0, lines[0]),
        (0, lines[1]),
        (0, lines[2]),
        (4_000_000, lines[3]),
        (4_000_000, lines[4]),
    ]
    source.close()


def test_pacing_stops_mid_sleep_when_the_engine_is_stopping(tmp_path: Path) -> None:
    """A stop request ends a paced replay without waiting out the gap."""
    lines = [event_line(0.0), event_line(3600.0)]
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    clock = SimulatedClock(START_US)
    source = make_source(tmp_path, clock, speed="realtime")
    batches = source.batches()

    assert next(batches) == [lines[0]]
    source.context.stopping.set()

    assert all_lines(batches) == []
    assert clock.now_us() - START_US < 3600 * US_PER_SECOND
    source.close()


def test_paced_position_stops_after_the_last_line_yielded(tmp_path: Path) -> None:
    """When a stop ends a paced replay inside a block, position() is the end
    of the last line handed over, so the lines held back are read again."""
    lines = [event_line(0.0), event_line(1.0), event_line(3600.0)]
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    clock = SimulatedClock(START_US)
    source = make_source(tmp_path, clock, speed="realtime")
    batches = source.batches()

    assert next(batches) == [lines[0]]
    assert source.position() == len(lines[0]) + 1
    assert next(batches) == [lines[1]]
    source.context.stopping.set()

    assert all_lines(batches) == []
    assert source.position() == len(lines[0]) + 1 + len(lines[1]) + 1
    source.close()


def test_paced_position_reaches_the_end_of_an_unterminated_file(
    tmp_path: Path,
) -> None:
    """A paced replay that reads everything ends at the file's size, even when
    the last line has no newline."""
    lines = [event_line(0.0), event_line(2.0), event_line(2.0)]
    data = b"\n".join(lines)
    (tmp_path / "events.jsonl").write_bytes(data)
    clock = SimulatedClock(START_US)
    source = make_source(tmp_path, clock, speed="realtime")

    assert all_lines(source.batches()) == lines
    assert source.position() == len(data)
    source.close()


def test_max_speed_does_not_touch_the_clock(tmp_path: Path) -> None:
    """The default speed reads as fast as it can: no simulated time passes."""
    lines = [event_line(0.0), event_line(100.0)]
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    clock = SimulatedClock(START_US)
    source = make_source(tmp_path, clock)

    assert all_lines(source.batches()) == lines
    assert clock.now_us() == START_US
    source.close()


def test_relative_path_resolves_against_the_rules_folder(tmp_path: Path) -> None:
    """``path`` is read relative to the context's base folder."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "events.jsonl").write_bytes(b"x\n")
    context = RuntimeContext("sources[0] (jsonl)", SimulatedClock(), tmp_path)
    source = JsonlSource({"path": "sub/events.jsonl"}, context)

    assert all_lines(source.batches()) == [b"x"]
    source.close()


def test_path_dash_reads_standard_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``path: "-"`` reads standard input and leaves it open at close."""
    read_end, write_end = os.pipe()
    os.write(write_end, b"one\ntwo\n")
    os.close(write_end)
    with os.fdopen(read_end, "r") as fake_stdin:
        monkeypatch.setattr("sys.stdin", fake_stdin)
        context = RuntimeContext("sources[0] (jsonl)", SimulatedClock(), tmp_path)
        source = JsonlSource({"path": "-"}, context)

        assert all_lines(source.batches()) == [b"one", b"two"]
        source.close()
        assert not fake_stdin.closed
