"""Every hook a plugin may implement, grouped by when the engine calls it.

Plugins mark their functions with :data:`hookimpl`; the plugin manager
refuses any ``engine_*`` function that matches no spec here, so a misspelt
hook is an error at start-up rather than code that silently never runs.
No hook is called per event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from engine.alerts import Alert
    from engine.components import Detector, Sink, Source, Window
    from engine.config import EngineConfig
    from engine.stats import CountersReport, RunSummary

PROJECT = "burst_engine"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- discovery: called once when the plugin manager is built -----------------


@hookspec
def engine_register_sources() -> list[type[Source]]:
    """Return the source classes this plugin provides.

    Called once per run, before the rules file is validated. Each class's
    ``type_name`` must be unique among all installed plugins.
    """
    raise NotImplementedError


@hookspec
def engine_register_windows() -> list[type[Window]]:
    """Return the window processor classes this plugin provides."""
    raise NotImplementedError


@hookspec
def engine_register_detectors() -> list[type[Detector]]:
    """Return the detector classes this plugin provides."""
    raise NotImplementedError


@hookspec
def engine_register_sinks() -> list[type[Sink]]:
    """Return the alert sink classes this plugin provides."""
    raise NotImplementedError


# -- lifecycle: called around a run -----------------------------------------


@hookspec
def engine_startup(config: EngineConfig) -> None:
    """Called once the rules file is valid and every component is built,
    before the first event is read.

    :param config: the effective, frozen configuration of this run.
    """


@hookspec
def engine_alert(alert: Alert) -> None:
    """Called for every alert edge after the sinks have received it.

    For observers (metrics, audit logs). Delivering alerts is the job of
    sinks, whose failures are isolated from each other; an exception raised
    here is logged and does not stop the run.

    :param alert: the firing or resolved alert.
    """


@hookspec
def engine_counters(report: CountersReport) -> None:
    """Called every counters interval with the live counts by event type and
    by source over the counters window (processing time).

    :param report: rates and top entries; see :class:`engine.stats.CountersReport`.
    """


@hookspec
def engine_shutdown(summary: RunSummary) -> None:
    """Called once after the sources stopped, in-flight events drained and the
    sinks flushed.

    :param summary: what the run saw: events, alerts, late and bad events.
    """


def hook_names() -> list[str]:
    """The names of every hook spec, for documentation and checks."""
    return sorted(name for name in globals() if name.startswith("engine_"))
