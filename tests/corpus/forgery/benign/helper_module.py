# name: helper-module
# feature: the answer imported from the student's own module (helpers.py, submitted beside the notebook)
# files: helpers.py
from helpers import mean
