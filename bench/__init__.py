"""Benchmarks for wbtool: artifact logging and checkout, run logging, and
start-up time.

Run ``python -m bench artifact``, ``python -m bench log`` or
``python -m bench startup`` from the repository root; ``python -m bench
--help`` lists the options.
"""
