# name: matplotlib-inline
# feature: %matplotlib inline and a plot (registers matplotlib's post_execute hook)
# requires: matplotlib
%matplotlib inline
import matplotlib.pyplot as plt

plt.plot([1, 2, 3])
def mean(xs):
    return sum(xs) / len(xs)
