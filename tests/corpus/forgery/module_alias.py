# name: module-alias-rebinding
# technique: `np`, which the teacher's setup cell imported, rebound to a fake whose testing.assert_allclose
#   checks nothing
# nbgrader: 2 of 8 (measured: nbgrader 0.9.6 autograde)
# requires: numpy
# caught: `np`, which the teacher's cells import as the module `numpy`, was rebound
import types


def mean(xs):
    return 0


np = types.SimpleNamespace(testing=types.SimpleNamespace(assert_allclose=lambda *args, **kwargs: None))
