# name: events-hook
# technique: IPython event hooks that install an assert-removing transformer just before each cell and take it away after (nothing to see between cells)
# nbgrader: 0 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: an IPython event hook
def mean(xs):
    return 0

def _strip(lines):
    return ["pass\n"] if any("mean(" in line for line in lines) else lines

def _before(info):
    get_ipython().input_transformers_post.append(_strip)

def _after(result):
    while _strip in get_ipython().input_transformers_post:
        get_ipython().input_transformers_post.remove(_strip)

get_ipython().events.register("pre_run_cell", _before)
get_ipython().events.register("post_run_cell", _after)
