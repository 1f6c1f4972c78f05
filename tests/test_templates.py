"""Summary templates: placeholders, brace escapes, unknown names."""

from __future__ import annotations

from engine.templates import compile_template, placeholders, unknown_placeholders


def test_placeholders_are_listed_in_order() -> None:
    """Every {name} is found, in the order written, repeats included."""
    template = "{count} from {source} in {window}, {count} again"

    assert placeholders(template) == ["count", "source", "window", "count"]


def test_doubled_braces_are_not_placeholders() -> None:
    """{{ and }} stand for literal braces."""
    assert placeholders("{{count}} {{ {source} }}") == ["source"]


def test_render_replaces_placeholders() -> None:
    """Fields are rendered with str()."""
    render = compile_template("{count} {event_type} events from {source}")

    assert render({"count": 7, "event_type": "ERROR", "source": "web-3"}) == (
        "7 ERROR events from web-3"
    )


def test_render_turns_doubled_braces_into_single_ones() -> None:
    """The escapes render as one brace each."""
    render = compile_template("{{literal}} {{{count}}} }}{{")

    assert render({"count": 3}) == "{literal} {3} }{"


def test_missing_field_renders_as_a_dash() -> None:
    """A field absent at render time, or None, prints '-' instead of failing."""
    render = compile_template("host={metadata.host} value={value}")

    assert render({"value": None}) == "host=- value=-"


def test_falsy_values_are_not_treated_as_missing() -> None:
    """0, False and '' are real values."""
    render = compile_template("[{a}] [{b}] [{c}]")

    assert render({"a": 0, "b": False, "c": ""}) == "[0] [False] []"


def test_text_without_placeholders_is_unchanged() -> None:
    """Plain text renders as itself."""
    assert compile_template("all quiet")({}) == "all quiet"


def test_unknown_placeholders_lists_names_not_known() -> None:
    """Names outside the known set are returned, in order."""
    template = "{count} {hots} {source} {cuont}"

    assert unknown_placeholders(template, ["count", "source"]) == ["hots", "cuont"]


def test_metadata_names_are_always_allowed() -> None:
    """metadata.<key>[.<key>] is accepted without being listed."""
    template = "{metadata.host} {metadata.zone.name} {metadata.k-8}"

    assert unknown_placeholders(template, []) == []


def test_malformed_metadata_names_are_unknown() -> None:
    """metadata alone, a trailing dot or an empty name are not field paths."""
    template = "{metadata} {metadata.} {} {metadata..x}"

    assert unknown_placeholders(template, ["count"]) == [
        "metadata",
        "metadata.",
        "",
        "metadata..x",
    ]


def test_escaped_braces_are_never_unknown() -> None:
    """{{name}} is text, so it is not checked."""
    assert unknown_placeholders("{{whatever}}", []) == []
