# name: numpy-options
# feature: numpy print and error options, numpy used in the answer
import numpy as np

np.set_printoptions(precision=3, suppress=True)
np.seterr(all="ignore")

def mean(xs):
    return float(np.mean(np.asarray(xs, dtype=float)))
