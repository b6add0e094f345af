# name: cell-magic
# feature: a cell magic (%%time) around the whole answer cell
%%time
def mean(xs):
    return sum(xs) / len(xs)
