# name: numpy-testing-patch
# technique: numpy.testing.assert_allclose patched to check nothing
# nbgrader: 2 of 8 (measured: nbgrader 0.9.6 autograde)
# requires: numpy
# caught: `np.testing.assert_allclose`, which the test cells call, was replaced
import numpy.testing


def mean(xs):
    return 0


numpy.testing.assert_allclose = lambda *args, **kwargs: None
