"""Chaos tests: killed processes, restarted databases, dropped connections."""
