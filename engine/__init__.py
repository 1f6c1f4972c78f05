"""burst-engine: a streaming rules engine for burst detection on event streams."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("burst-engine")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
