# name: run-cell-replaced
# technique: get_ipython().run_cell replaced by a wrapper that runs `pass` instead of any cell calling mean()
# nbgrader: 8 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: `get_ipython().run_cell` was replaced in cell 'mean_answer'
def mean(xs):
    return 0


_ip = get_ipython()
_real_run_cell = _ip.run_cell


def _run_cell(raw_cell, *args, **kwargs):
    return _real_run_cell("pass" if "mean(" in raw_cell else raw_cell, *args, **kwargs)


_ip.run_cell = _run_cell
