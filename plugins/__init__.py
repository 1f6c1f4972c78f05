"""The default plugin set: generator and JSON Lines sources, the exact sliding
window, the burst detector, and console and JSON Lines sinks.

Each module is a pluggy plugin registered through the same hooks a
third-party package uses; ``engine.plugin_manager`` lists them.
"""
