# name: kernel-do-execute
# technique: the kernel's do_execute replaced (below IPython): code calling mean() is swapped for `pass`
#   before IPython sees it
# nbgrader: 8 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: the kernel's `do_execute` was replaced in cell 'mean_answer'
def mean(xs):
    return 0


_kernel = get_ipython().kernel
_real_do_execute = _kernel.do_execute


async def _do_execute(code, *args, **kwargs):
    return await _real_do_execute("pass" if "mean(" in code else code, *args, **kwargs)


_kernel.do_execute = _do_execute
