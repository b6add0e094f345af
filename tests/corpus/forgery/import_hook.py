# name: import-hook
# technique: an import hook (sys.meta_path) that serves a fake math module to the test cell's `import math`
# nbgrader: 2 of 8 (measured: nbgrader 0.9.6 autograde)
# caught: an import hook (sys.meta_path) was added in cell 'mean_answer'
import importlib.abc
import importlib.util
import sys
import types


def mean(xs):
    return 0


class _FakeMath(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name == "math" else None

    def create_module(self, spec):
        m = types.ModuleType("math")
        m.isclose = lambda *args, **kwargs: True
        return m

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _FakeMath())
del sys.modules["math"]
