"""A plugin package installed with pip works like a built-in one.

The example distribution in ``tests/example_plugin`` is built and installed
with pip into a temporary folder, and the real ``engine`` command runs with
that folder on ``PYTHONPATH``. The engine then finds the plugin exactly as it
finds any installed package: through the ``burst_engine`` entry point in the
package's dist-info, which ``importlib.metadata`` reads from every folder on
``sys.path``. A fresh virtual environment would find it the same way, but
would not see the engine installed in the test environment (``venv
--system-site-packages`` exposes the base interpreter's packages, not this
environment's), and installing the engine again would need the network.

Building the package offline (``--no-build-isolation``) needs a setuptools
that can make wheels on its own (70.1 or later) or the ``wheel`` package in
the test environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

EXAMPLE_PLUGIN = Path(__file__).resolve().parent / "example_plugin"
ENGINE = Path(sysconfig.get_path("scripts")) / "engine"
TIMEOUT_SECONDS = 60

#: (seconds, event_type, source), in time order. What the rules below make of
#: them, with windows (t - size, t]:
#: ERROR_BURST (per source, 3 in 10s): web-1 fires at 3 and resolves at 11
#: when the event at 1 leaves; fires again at 22 and resolves at 30; web-2
#: fires at 42 and resolves at 50. Its two events at 5 and 6 never reach 3.
#: WARN_STORM (all sources, 2 in 5s): fires at 4, resolves at 7; the WARN at
#: 50 is alone. FATAL_BURST sees no FATAL event and never fires.
EVENTS = [
    (1, "ERROR", "web-1"),
    (2, "ERROR", "web-1"),
    (2, "WARN", "web-1"),
    (3, "ERROR", "web-1"),
    (4, "WARN", "db-1"),
    (5, "ERROR", "web-2"),
    (6, "ERROR", "web-2"),
    (10, "INFO", "web-1"),
    (20, "ERROR", "web-1"),
    (21, "ERROR", "web-1"),
    (22, "ERROR", "web-1"),
    (30, "INFO", "web-2"),
    (40, "ERROR", "web-2"),
    (41, "ERROR", "web-2"),
    (42, "ERROR", "web-2"),
    (50, "WARN", "db-1"),
]
EXPECTED_COUNTS = {
    "ERROR_BURST": {"firing": 3, "resolved": 3},
    "WARN_STORM": {"firing": 1, "resolved": 1},
}

RULES = """\
version: 1
sources:
  - type: jsonl
    path: events.jsonl
rules:
  - name: ERROR_BURST
    match: {event_type: ERROR}
    group_by: [source]
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
  - name: WARN_STORM
    match: {event_type: WARN}
    window: {type: sliding, size: 5s}
    detector: {type: burst, threshold: 2}
  - name: FATAL_BURST
    match: {event_type: FATAL}
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 1}
sinks:
  - type: counter_file
    path: out/counts.json
    indent: 4
"""
PLUGINS_KEY = "plugins: [burst_engine_example]\n"


def copy_example_plugin(target: Path) -> Path:
    """A copy of the example package: pip builds in the source folder, and the
    ``*.egg-info`` it leaves there would itself be found as an installed
    distribution by anything that puts that folder on ``sys.path``."""
    ignore = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    return Path(shutil.copytree(EXAMPLE_PLUGIN, target, ignore=ignore))


@pytest.fixture(scope="module")
def plugin_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package's source folder, never built."""
    return copy_example_plugin(tmp_path_factory.mktemp("source") / "example")


@pytest.fixture(scope="module")
def installed_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the example package is pip-installed into."""
    source = copy_example_plugin(tmp_path_factory.mktemp("build") / "example")
    site = tmp_path_factory.mktemp("site")
    # The machine's pip configuration (indexes, find-links, constraints) must
    # not change what this test does; --no-index keeps it off the network.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    command = [
        *(sys.executable, "-m", "pip", "install", "--no-deps", "--no-index"),
        *("--no-build-isolation", "--no-input", "--disable-pip-version-check"),
        *("--target", str(site), str(source)),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=TIMEOUT_SECONDS
    )
    hint = "offline builds need setuptools>=70.1 or wheel in the test environment"
    assert result.returncode == 0, f"{hint}\n{result.stdout}{result.stderr}"
    return site


def run_engine(
    *args: str, cwd: Path, pythonpath: Path
) -> subprocess.CompletedProcess[str]:
    """Run the real ``engine`` command with ``pythonpath`` as ``PYTHONPATH``."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [str(ENGINE), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT_SECONDS,
    )


def write_run_folder(folder: Path, rules: str) -> None:
    """Put the rules file and the events of :data:`EVENTS` in ``folder``."""
    lines = [
        json.dumps({"timestamp": seconds, "event_type": kind, "source": source})
        for seconds, kind, source in EVENTS
    ]
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "rules.yaml").write_text(rules, encoding="utf-8")


def with_plugins_key(rules: str) -> str:
    """The rules text with ``plugins: [burst_engine_example]`` after ``version``."""
    first, rest = rules.split("\n", 1)
    return f"{first}\n{PLUGINS_KEY}{rest}"


@pytest.mark.slow
def test_installed_counter_file_sink_counts_alerts_per_rule(
    installed_site: Path, tmp_path: Path
) -> None:
    """The pip-installed ``counter_file`` sink writes firing and resolved counts
    per rule."""
    write_run_folder(tmp_path, RULES)

    result = run_engine(
        "--rules", "rules.yaml", cwd=tmp_path, pythonpath=installed_site
    )

    assert result.returncode == 0, result.stderr
    text = (tmp_path / "out" / "counts.json").read_text(encoding="utf-8")
    assert json.loads(text) == EXPECTED_COUNTS
    assert text.startswith('{\n    "ERROR_BURST": {\n        "firing": 3,')


@pytest.mark.slow
def test_engine_plugins_lists_the_installed_example_distribution(
    installed_site: Path, tmp_path: Path
) -> None:
    """``engine plugins`` names the example's entry point, distribution, version
    and sink."""
    result = run_engine("plugins", cwd=tmp_path, pythonpath=installed_site)

    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert ["example", "[burst-engine-example", "0.1.0]", "sink:", "counter_file"] in (
        lines
    )


@pytest.mark.slow
def test_engine_schema_includes_the_counter_file_options(
    installed_site: Path, tmp_path: Path
) -> None:
    """``engine schema`` carries the sink's options: ``path`` required, no
    unknown keys."""
    result = run_engine("schema", cwd=tmp_path, pythonpath=installed_site)

    assert result.returncode == 0, result.stderr
    sink = json.loads(result.stdout)["$defs"]["sink"]
    assert "counter_file" in sink["properties"]["type"]["enum"]
    [options] = [
        branch["then"]
        for branch in sink["allOf"]
        if branch["if"]["properties"]["type"] == {"const": "counter_file"}
    ]
    assert options["required"] == ["path"]
    assert options["additionalProperties"] is False
    assert options["properties"]["path"]["type"] == "string"
    assert options["properties"]["indent"]["type"] == "integer"


@pytest.mark.slow
def test_validate_reports_counter_file_option_errors_with_their_location(
    installed_site: Path, tmp_path: Path
) -> None:
    """``engine validate`` reports a misspelt and a missing ``counter_file``
    option with file:line:col and path, and exits 2."""
    rules = """\
version: 1
sources:
  - {type: jsonl, path: events.jsonl}
rules:
  - name: ERROR_BURST
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
sinks:
  - type: counter_file
    path: counts.json
    indnt: 4
  - type: counter_file
"""
    (tmp_path / "rules.yaml").write_text(rules, encoding="utf-8")

    result = run_engine(
        "validate", "rules.yaml", cwd=tmp_path, pythonpath=installed_site
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        "rules.yaml:11:5: sinks[0].indnt: unknown key 'indnt', expected one of: "
        "dead_letter, indent, max_pending, path, send_resolved, type; "
        "did you mean 'indent'?"
    ) in result.stderr
    assert "rules.yaml:12:5: sinks[1]: missing key: 'path'" in result.stderr


def test_plugins_key_loads_the_example_module_from_its_source_folder(
    plugin_source: Path, tmp_path: Path
) -> None:
    """``plugins: [burst_engine_example]`` makes ``counter_file`` usable without
    installing the package."""
    write_run_folder(tmp_path, with_plugins_key(RULES))

    result = run_engine("--rules", "rules.yaml", cwd=tmp_path, pythonpath=plugin_source)

    assert result.returncode == 0, result.stderr
    counts = json.loads((tmp_path / "out" / "counts.json").read_text("utf-8"))
    assert counts == EXPECTED_COUNTS


def test_counter_file_is_unknown_when_neither_installed_nor_listed(
    plugin_source: Path, tmp_path: Path
) -> None:
    """Importable is not enough: without an entry point or ``plugins:``, the
    sink type ``counter_file`` does not exist."""
    write_run_folder(tmp_path, RULES)

    result = run_engine(
        "validate", "rules.yaml", cwd=tmp_path, pythonpath=plugin_source
    )

    assert result.returncode == 2
    assert "rules.yaml:20:11: sinks[0].type:" in result.stderr
    assert "counter_file" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_plugins_key_may_name_an_installed_plugin_module(
    installed_site: Path, tmp_path: Path
) -> None:
    """Listing an installed plugin's module under ``plugins:`` loads it once
    instead of failing."""
    write_run_folder(tmp_path, with_plugins_key(RULES))

    result = run_engine(
        "--rules", "rules.yaml", cwd=tmp_path, pythonpath=installed_site
    )

    assert result.returncode == 0, result.stderr
    counts = json.loads((tmp_path / "out" / "counts.json").read_text("utf-8"))
    assert counts == EXPECTED_COUNTS
