"""Benchmarks: `python -m bench [group ...]` prints each figure as `BENCH <name> <value> <unit>`.

A group is a module here whose name does not start with an underscore; it defines `run()`.
See docs/benchmarks.md.
"""
