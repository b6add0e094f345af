# name: math-isclose-patch
# technique: math.isclose patched to always say yes
# nbgrader: 2 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: `math.isclose`, which the test cells call, was replaced in cell 'mean_answer'
import math


def mean(xs):
    return 0


math.isclose = lambda *args, **kwargs: True
