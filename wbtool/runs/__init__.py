"""Runs: the run folder, history, summary, config and the Run API."""
