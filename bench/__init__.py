"""Benchmarks for wbtool: artifact logging and checkout, run logging, the cost
of wrapping a command in ``wbtool run``, and start-up time.

Run ``python -m bench artifact``, ``python -m bench log``, ``python -m bench
run`` or ``python -m bench startup`` from the repository root; ``python -m
bench --help`` lists the options.
"""
