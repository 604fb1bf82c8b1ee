"""brainrecon in Python: ridge regression with scikit-learn's API, GLMsingle's single-trial GLM
with GLMsingle's API (brainrecon.glm.GLM_single), prepared subjects as memory-mapped numpy
arrays, reconstruction metrics, the routes (prepare_subject, compute_features, fit_decoders,
reconstruct, encode_runs, train_word2vec), live sessions (brainrecon.realtime.Session) and the EEG route
(brainrecon.eeg)."""

from . import _native
from . import align, eeg, glm, group, metrics, nsd, realtime, routes
from ._banded import BandedRidgeCV, KernelRidgeCV, MultipleKernelRidgeCV
from ._ridge import RidgeCV, load_model, merge_models
from .data import Subject, load_subject
from .routes import (Reconstruction, caption, compute_features, encode_runs, fit_decoders,
                     prepare_subject, reconstruct, train_word2vec)

__version__ = _native.__version__


def set_num_threads(threads):
    """Threads of the ridge solver (0 = all cores), as the CLI's ``--threads``."""
    _native.set_num_threads(int(threads))


__all__ = ["RidgeCV", "KernelRidgeCV", "MultipleKernelRidgeCV", "BandedRidgeCV", "load_model", "merge_models", "load_subject", "Subject", "glm", "metrics", "nsd", "set_num_threads",
           "realtime", "routes", "align", "group", "eeg", "prepare_subject", "compute_features", "fit_decoders",
           "caption", "reconstruct", "Reconstruction", "encode_runs", "train_word2vec"]
