# name: run-cell-class-patched
# technique: IPython's InteractiveShell.run_cell patched on the class (no instance attribute to see)
# nbgrader: 8 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: IPython's `InteractiveShell.run_cell` was replaced
from IPython.core.interactiveshell import InteractiveShell


def mean(xs):
    return 0


_real = InteractiveShell.run_cell


def _run_cell(self, raw_cell, *args, **kwargs):
    return _real(self, "pass" if "mean(" in raw_cell else raw_cell, *args, **kwargs)


InteractiveShell.run_cell = _run_cell
