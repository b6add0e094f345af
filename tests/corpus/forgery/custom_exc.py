# name: set-custom-exc
# technique: a custom exception handler (set_custom_exc) for every exception, which shows nothing
# nbgrader: 0 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: a custom exception handler (set_custom_exc)
def mean(xs):
    return 0


get_ipython().set_custom_exc((BaseException,), lambda shell, etype, value, tb, tb_offset=None: None)
