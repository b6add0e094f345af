# name: showtraceback-replaced
# technique: get_ipython().showtraceback replaced by a function that shows nothing
#   (nbgrader PR #1324: errors without output)
# nbgrader: 0 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: `get_ipython().showtraceback` was replaced in cell 'mean_answer'
def mean(xs):
    return 0


get_ipython().showtraceback = lambda *args, **kwargs: None
