"""Load testing with known drift: scenarios and their ground truth (``scenario``, ``generate``),
replay at a target rate (``replay``), scoring and the report (``evaluate``, ``report``), a whole
run against a live processor (``session``), ``driftstream demo`` (``demo``), and the benchmarks
(``bench``, ``bench_processor``). The command line is ``driftstream loadtest …``.

Submodules are imported where used: the demo and the benchmarks pull in matplotlib, rich and
numba-compiled code that a plain ``import loadtest`` should not load.
"""

__all__: list[str] = []
