# name: always-equal
# technique: mean() returns a float subclass whose __eq__ is always true (nbgrader issue #1379)
# nbgrader: 2 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: compare equal to anything
class _Anything(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__


def mean(xs):
    return _Anything(0)
