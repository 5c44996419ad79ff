"""Stageline's own workloads, each against a real `stageline serve` over HTTP."""
