"""The numpy names mmdet 2.28, mmtrack 0.14, mmcv 1.7 and motmetrics still use.

numpy 1.24 removed the aliases ``np.int``, ``np.float``, ``np.bool``,
``np.object``, ``np.str`` and ``np.complex`` (they were the builtins), and
numpy 2.0 removed ``np.asfarray``. Those packages call them in code this one
runs: evaluation (``eval_mot``, ``ytviseval``, motmetrics' distances), dataset
labels, mmcv ops. ``install()`` puts back only the names the installed numpy
lacks, with their old meaning, so numpy 1.23.5 (which still has them) is left
as it is. The package's ``__init__`` calls it, so it runs before any of those
packages is imported through mmtrack-serve.
"""
import warnings

import numpy as np

# The removed aliases were these builtins.
ALIASES = {'int': int, 'float': float, 'bool': bool, 'object': object, 'str': str,
           'complex': complex}


def asfarray(a, dtype=np.float64):
    """numpy 1.x's ``asfarray``: an array of at least float64 precision."""
    if not np.issubdtype(dtype, np.inexact):
        dtype = np.float64
    return np.asarray(a, dtype=dtype)


def _has(name):
    # numpy 1.23 still answers the aliases, with a DeprecationWarning.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            getattr(np, name)
        except AttributeError:
            return False
    return True


def missing():
    """Names the installed numpy lacks that those packages use."""
    names = [name for name in ALIASES if not _has(name)]
    return names + ([] if _has('asfarray') else ['asfarray'])


def install():
    """Adds what ``missing()`` lists to the numpy module; returns those names."""
    names = missing()
    for name in names:
        setattr(np, name, asfarray if name == 'asfarray' else ALIASES[name])
    return names
