"""JUnit XML for ``engine test --junit``: the report format CI systems read.

One ``testsuite`` per test file, one ``testcase`` per test; a failed test
has a ``failure`` whose message is the one-line reason and whose text is
the diff of expected and raised alerts.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path

from engine.errors import UsageError
from engine.ruletests import RuleTestResult


def junit_tree(results: Sequence[RuleTestResult]) -> ET.ElementTree[ET.Element]:
    """The report as an element tree, suites in the order tests ran."""
    root = ET.Element("testsuites", name="engine test")
    _totals(root, results)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    for file, group in groupby(results, key=lambda r: r.file):
        cases = list(group)
        suite = ET.SubElement(root, "testsuite", name=file, timestamp=stamp)
        _totals(suite, cases)
        for result in cases:
            _testcase(suite, result)
    ET.indent(root)
    return ET.ElementTree(root)


def _totals(element: ET.Element, results: Sequence[RuleTestResult]) -> None:
    element.set("tests", str(len(results)))
    element.set("failures", str(sum(not r.passed for r in results)))
    element.set("errors", "0")
    element.set("skipped", "0")
    element.set("time", f"{sum(r.seconds for r in results):.3f}")


def _testcase(suite: ET.Element, result: RuleTestResult) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        name=result.name,
        classname=_class_name(result.file),
        file=result.file,
        time=f"{result.seconds:.3f}",
    )
    if not result.passed:
        failure = ET.SubElement(
            case, "failure", message=result.message, type="AlertsMismatch"
        )
        failure.text = "\n".join((result.message, *result.details))


def _class_name(file: str) -> str:
    """``rules/tests/default.test.yaml`` -> ``rules.tests.default``, the
    dotted form CI systems group test cases by."""
    path = Path(file)
    stem = path.name.split(".", 1)[0]
    parts = [p for p in (*path.parent.parts, stem) if p not in ("", ".", "..", "/")]
    return ".".join(parts)


def write_junit(path: Path, results: Sequence[RuleTestResult]) -> None:
    """Write the report to ``path``; a folder that cannot be written to is a
    usage error."""
    try:
        junit_tree(results).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as error:
        raise UsageError(
            f"--junit {path}: cannot write: {error.strerror or error}"
        ) from error
