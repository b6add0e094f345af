# name: builtins-shadowing
# technique: isinstance and abs shadowed by the student's own functions in the notebook's namespace
# nbgrader: 2 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: `abs` is not the builtin but the submission's own in cell 'mean_answer'
def mean(xs):
    return 0


def isinstance(obj, cls):
    return True


def abs(x):
    return 0
