# name: sys-modules-substitution
# technique: sys.modules['math'] replaced by a fake module whose isclose always says yes
#   (the test cell's `import math` gets it)
# nbgrader: 2 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: the module `math` in sys.modules was replaced
import sys
import types


def mean(xs):
    return 0


_fake = types.ModuleType("math")
_fake.isclose = lambda *args, **kwargs: True
sys.modules["math"] = _fake
