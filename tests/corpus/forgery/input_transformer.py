# name: input-transformer
# technique: an IPython input transformer (input_transformers_post) that turns every later cell calling mean()
#   into `pass`
# nbgrader: 8 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: an input transformer (input_transformers_post) was added in cell 'mean_answer'
def mean(xs):
    return 0


def _hide_tests(lines):
    return ["pass\n"] if any("mean(" in line for line in lines) else lines


get_ipython().input_transformers_post.append(_hide_tests)
