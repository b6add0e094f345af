# name: warnings-filters
# feature: warnings filters
import warnings

warnings.filterwarnings("ignore")
warnings.simplefilter("ignore", DeprecationWarning)
def mean(xs):
    return sum(xs) / len(xs)
