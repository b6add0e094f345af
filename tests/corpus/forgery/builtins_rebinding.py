# name: builtins-rebinding
# technique: the builtins isinstance and abs rebound in the builtins module (every later cell sees them);
#   isinstance lies only about float, so the kernel keeps working
# nbgrader: 4 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: the builtin `abs` was replaced in cell 'mean_answer'
import builtins


def mean(xs):
    return 0


_real_isinstance = isinstance
builtins.isinstance = lambda obj, cls: True if cls is float else _real_isinstance(obj, cls)
builtins.abs = lambda x: 0
