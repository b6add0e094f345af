# name: sys-settings
# feature: sys.setrecursionlimit, sys.path.append, an extra module imported by the student
import sys
import statistics

sys.setrecursionlimit(5000)
sys.path.append("extra")

def mean(xs):
    return float(statistics.mean(xs))
