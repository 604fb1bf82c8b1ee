"""brainrecon in Python: ridge regression with scikit-learn's API, prepared subjects as
memory-mapped numpy arrays, and reconstruction metrics."""

from . import _native
from . import metrics, nsd
from ._banded import BandedRidgeCV, KernelRidgeCV, MultipleKernelRidgeCV
from ._ridge import RidgeCV, load_model, merge_models
from .data import Subject, load_subject

__version__ = _native.__version__


def set_num_threads(threads):
    """Threads of the ridge solver (0 = all cores), as the CLI's ``--threads``."""
    _native.set_num_threads(int(threads))


__all__ = ["RidgeCV", "KernelRidgeCV", "MultipleKernelRidgeCV", "BandedRidgeCV", "load_model", "merge_models", "load_subject", "Subject", "metrics", "nsd", "set_num_threads"]
