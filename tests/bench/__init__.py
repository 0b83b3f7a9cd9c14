"""peek's benchmark: `python -m tests.bench` (see `__main__.py` and README "Performance").

Kept import-free on purpose: the bare-loop baselines run as `python -m tests.bench.bare`, and
importing this package must not add to what they measure.
"""
