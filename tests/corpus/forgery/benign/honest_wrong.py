# name: honest-wrong
# feature: none: a wrong answer, graded 0 by both
def mean(xs):
    return 0
