# name: display
# feature: IPython.display and a custom text formatter for floats
from IPython.display import Markdown, display

display(Markdown("**my answer**"))
get_ipython().display_formatter.formatters["text/plain"].for_type(float, lambda x, p, cycle: p.text(f"{x:.3f}"))
def mean(xs):
    return sum(xs) / len(xs)
mean([1.0, 2.0])
