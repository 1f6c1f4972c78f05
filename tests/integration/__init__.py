"""Tests against real brokers and local HTTP servers."""
