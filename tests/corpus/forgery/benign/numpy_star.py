# name: numpy-star-import
# feature: `from numpy import *`, which shadows abs, round, all, any... with numpy's own functions
from numpy import *

def mean(xs):
    return float(sum(xs) / len(xs))
