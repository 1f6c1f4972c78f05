"""The ``engine`` command.

``engine --rules FILE`` (the same as ``engine run --rules FILE``) runs a
rules file; ``validate``, ``schema`` and ``plugins`` inspect without running;
``test`` runs rule unit tests and ``replay`` shows what a rules file would
have raised over a recorded file. User errors are printed once as
``error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from engine import __version__
from engine.config import ComponentConfig, EngineConfig, load_config
from engine.errors import UsageError
from engine.hookspecs import hookimpl
from engine.plugin_manager import load_plugins
from engine.runtime import Engine
from engine.schema import compose_schema
from engine.stats import CountersReport
from engine.timeutil import format_duration

if TYPE_CHECKING:
    from engine.ruletests import RuleTestResult

log = logging.getLogger("engine")

EXIT_USAGE = 2
EXIT_TEST_FAILED = 1
#: A source stopped with an error: the run ended without exhausting its input.
EXIT_SOURCE_FAILED = 1
COMMANDS = ("run", "validate", "schema", "plugins", "test", "replay")
#: Commands whose own report is the output: the engine's log lines (late
#: events set aside, start-up) would only repeat it, unless --verbose.
REPORTING_COMMANDS = ("test", "replay")


class _CountersPrinter:
    """Prints the live counters to standard error while the engine runs."""

    @hookimpl
    def engine_counters(self, report: CountersReport) -> None:
        print(f"counters: {report.render()}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engine",
        description="Streaming rules engine: burst detection on event streams.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbosity.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="warnings and errors only, no counters",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run", parents=[verbosity], help="run a rules file (default)"
    )
    run.add_argument("--rules", required=True, type=Path, help="the rules file")
    validate = commands.add_parser(
        "validate", parents=[verbosity], help="check rules files without running them"
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _add_test_parser(commands, verbosity)
    _add_replay_parser(commands, verbosity)
    commands.add_parser(
        "schema", parents=[verbosity], help="print the JSON Schema of rules files"
    )
    commands.add_parser(
        "plugins",
        parents=[verbosity],
        help="list installed plugins and their components",
    )
    return parser


def _add_test_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    verbosity: argparse.ArgumentParser,
) -> None:
    test = commands.add_parser(
        "test",
        parents=[verbosity],
        help="run rule unit tests (YAML files of events and expected alerts)",
    )
    test.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="test files, or folders holding *.test.yaml files",
    )
    test.add_argument(
        "--junit", type=Path, metavar="PATH", help="also write a JUnit XML report"
    )


def _add_replay_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    verbosity: argparse.ArgumentParser,
) -> None:
    replay = commands.add_parser(
        "replay",
        parents=[verbosity],
        help="show what a rules file would have raised over a recorded JSONL file",
    )
    replay.add_argument("--rules", required=True, type=Path, help="the rules file")
    replay.add_argument(
        "--events", required=True, type=Path, help="the recorded events (JSON Lines)"
    )
    replay.add_argument(
        "--json", action="store_true", help="print one JSON object instead of text"
    )
    replay.add_argument(
        "--keep-sinks",
        action="store_true",
        help="also send the alerts to the rules file's sinks",
    )
    replay.add_argument(
        "--top",
        type=int,
        default=10,
        metavar="N",
        help="busiest groups and hours shown in the text report (default 10)",
    )


def _normalise(argv: Sequence[str]) -> list[str]:
    """``engine --rules X`` means ``engine run --rules X``."""
    args = list(argv)
    first = next((a for a in args if not a.startswith("-")), None)
    if first not in COMMANDS and not {"-h", "--help", "--version"} & set(args):
        args.insert(0, "run")
    return args


def _configure_logging(verbose: bool, quiet: bool, reporting: bool = False) -> None:
    level = logging.INFO
    if verbose:
        level = logging.DEBUG
    elif reporting:
        level = logging.ERROR
    elif quiet:
        level = logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _banner(config: EngineConfig) -> str:
    def names(components: Sequence[ComponentConfig]) -> str:
        return ", ".join(c.type for c in components)

    time = config.time
    lateness = format_duration(time.allowed_lateness_us)
    return (
        f"engine {__version__} starting: rules {config.path} "
        f"({len(config.rules)} rules), sources [{names(config.sources)}], "
        f"sinks [{names(config.sinks)}], time {time.mode}, "
        f"allowed_lateness {lateness}, late {time.late}"
    )


def _install_signal_handlers(engine: Engine) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        if engine.stopping.is_set():
            os._exit(128 + signum)  # second signal: leave at once
        engine.request_stop()
        log.info(
            "received %s, stopping (send it again to exit at once)",
            signal.Signals(signum).name,
        )

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def cmd_run(args: argparse.Namespace) -> int:
    extra = () if args.quiet else (_CountersPrinter(),)
    config, registry = load_config(args.rules, extra_plugins=extra)
    engine = Engine(config, registry)
    _install_signal_handlers(engine)
    log.info("%s", _banner(config))
    summary = engine.run()
    print(summary.render(config.counters.top), file=sys.stderr, flush=True)
    return EXIT_SOURCE_FAILED if summary.failed_sources else 0


def cmd_validate(args: argparse.Namespace) -> int:
    problems: list[str] = []
    for path in args.files:
        try:
            config, _ = load_config(path)
        except UsageError as error:
            problems.extend(str(p) for p in error.problems)
            continue
        count = len(config.rules)
        print(f"{path}: ok ({count} rule{'' if count == 1 else 's'})")
    if problems:
        raise UsageError(*problems)
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    # Imported here, like replay's modules: `engine --rules` starts faster
    # without them.
    from engine.junit import write_junit
    from engine.ruletest_files import load_test_files
    from engine.ruletests import run_test_files

    files = load_test_files(args.files)
    results: list[RuleTestResult] = []
    for result in run_test_files(files):
        results.append(result)
        _print_result(result)
    if args.junit is not None:
        write_junit(args.junit, results)
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed", flush=True)
    return EXIT_TEST_FAILED if failed else 0


def _print_result(result: RuleTestResult) -> None:
    if result.passed:
        print(f"ok    {result.file}: {result.name}", flush=True)
        return
    print(f"FAIL  {result.file}: {result.name}", flush=True)
    print(f"      {result.message}", flush=True)
    for line in result.details:
        print(f"      {line}".rstrip(), flush=True)


def cmd_replay(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise UsageError(f"--top: found {args.top}, expected at least 1")
    from engine.replay import render_text, replay, report_dict

    data = report_dict(replay(args.rules, args.events, keep_sinks=args.keep_sinks))
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(render_text(data, args.top))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(compose_schema(load_plugins()), indent=2))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    for info in load_plugins().plugins:
        origin = f"{info.distribution} {info.version}".strip()
        provides = "; ".join(
            f"{kind}: {', '.join(sorted(names))}"
            for kind, names in sorted(info.components.items())
        )
        print(f"{info.name}  [{origin}]  {provides or '(hooks only)'}")
    return 0


HANDLERS = {
    "run": cmd_run,
    "validate": cmd_validate,
    "schema": cmd_schema,
    "plugins": cmd_plugins,
    "test": cmd_test,
    "replay": cmd_replay,
}


def _print_error(error: UsageError) -> None:
    problems = error.problems
    if len(problems) == 1:
        print(f"error: {problems[0]}", file=sys.stderr)
        return
    print(f"error: {len(problems)} problems:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(_normalise(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        _parser().print_help()
        return EXIT_USAGE
    _configure_logging(
        args.verbose, args.quiet, reporting=args.command in REPORTING_COMMANDS
    )
    try:
        return HANDLERS[args.command](args)
    except UsageError as error:
        _print_error(error)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Ctrl-C before the engine's own handlers are installed (start-up).
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
