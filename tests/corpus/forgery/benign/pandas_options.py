# name: pandas-options
# feature: pandas display options
# requires: pandas
import pandas as pd

pd.set_option("display.max_rows", 10)
pd.options.display.float_format = "{:.2f}".format
def mean(xs):
    return sum(xs) / len(xs)
