# name: input-transformer-cleanup
# technique: a cleanup input transformer (input_transformers_cleanup, run before IPython's own) that comments out
#   every `assert` and `np.testing` line
# nbgrader: 8 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: an input transformer (input_transformers_cleanup) was added in cell 'mean_answer'
def mean(xs):
    return 0


get_ipython().input_transformers_cleanup.insert(
    0, lambda lines: ["# " + l if l.lstrip().startswith(("assert", "np.testing")) else l for l in lines]
)
