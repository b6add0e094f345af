# name: events-hook
# technique: IPython event hooks that patch math.isclose, numpy.testing.assert_allclose, isinstance and abs
#   just before each cell and restore them after (nothing to see between cells)
# nbgrader: 6 of 8 (measured: nbgrader 0.9.6 autograde)
# requires: numpy
# caught: an IPython event hook
import builtins
import math

import numpy.testing


def mean(xs):
    return 0


_saved = {}
_real_isinstance = isinstance


def _before(info):
    _saved.update(
        isclose=math.isclose, allclose=numpy.testing.assert_allclose, isinstance=builtins.isinstance, abs=builtins.abs
    )
    math.isclose = lambda *args, **kwargs: True
    numpy.testing.assert_allclose = lambda *args, **kwargs: None
    builtins.isinstance = lambda obj, cls: True if cls is float else _real_isinstance(obj, cls)
    builtins.abs = lambda x: 0


def _after(result):
    if _saved:
        math.isclose, numpy.testing.assert_allclose = _saved["isclose"], _saved["allclose"]
        builtins.isinstance, builtins.abs = _saved["isinstance"], _saved["abs"]


get_ipython().events.register("pre_run_cell", _before)
get_ipython().events.register("post_run_cell", _after)
