# name: autoreload
# feature: the autoreload extension (IPython event hooks from the installation) and a helper module
# files: helpers.py
%load_ext autoreload
%autoreload 2
from helpers import mean
