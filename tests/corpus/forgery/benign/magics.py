# name: magics
# feature: line magics (%time, %who, %config, %xmode, %env) in the answer cell
%time _warm = sum(range(1000))
%who
%config IPCompleter.greedy = True
%xmode Minimal
%env GRADEFLOW_BENIGN=1
def mean(xs):
    return sum(xs) / len(xs)
