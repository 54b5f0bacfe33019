"""Benchmarks for wbtool: artifact logging and checkout, and start-up time.

Run ``python -m bench artifact`` or ``python -m bench startup`` from the
repository root; ``python -m bench --help`` lists the options.
"""
