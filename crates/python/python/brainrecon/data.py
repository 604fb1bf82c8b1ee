"""A prepared subject (``brainrecon nsd prepare``'s output) as memory-mapped numpy arrays."""

import json
from pathlib import Path

import numpy as np

from . import _native

_SPLITS = ("train", "train_averaged", "test")


def _memmap(path, layout):
    dtype, shape, offset = layout
    return np.memmap(path, dtype=np.dtype(dtype), mode="r", offset=offset, shape=tuple(shape))


class Subject:
    """A prepared subject. Whole-atlas betas, images and ROI coordinates are read-only
    ``numpy.memmap`` views of the files: nothing is read until it is used."""

    def __init__(self, path):
        self._native = _native.Subject(str(path))
        self.path = Path(path)
        self.meta = json.loads(self._native.meta_json())

    def __repr__(self):
        m = self.meta
        return (f"Subject({str(self.path)!r}: {m['subject']}, {m['n_train_trials']} train trials, "
                f"{m['n_test_images']} test images)")

    @property
    def rois(self):
        """Every ROI name (atlases and atlas/label) with its voxel count."""
        return dict(self._native.roi_counts())

    def betas(self, roi="nsdgeneral", split="train"):
        """float32 (rows, voxels) betas of ``roi`` for ``split`` ('train': single trials,
        'train_averaged', 'test': averaged over repeats).

        A whole atlas is a memory-mapped view; a label or union of labels selects columns, which
        numpy copies into memory."""
        name, atlas, columns = self._native.roi(roi)
        path, layout = self._native.betas_layout(atlas, split)
        mapped = _memmap(path, layout)
        if columns is None:
            return mapped
        return np.asarray(mapped[:, columns])

    def stimulus_ids(self, split="train"):
        """int64 0-based 73k ids of the rows of ``split``'s betas."""
        return self._native.row_ids(split)

    def _mapped(self, relative, dtype, name, ndim):
        path = self.path / relative
        layout = _native.npy_layout(str(path), dtype, name)
        if len(layout[1]) != ndim:
            raise ValueError(f"{path}: shape: expected {ndim} dimensions, found {tuple(layout[1])}")
        return _memmap(path, layout)

    @property
    def image_ids(self):
        """int64 sorted ids of the rows of :attr:`images`."""
        return np.asarray(self._mapped("stimuli/ids.npy", "<i8", "int64", 1))

    @property
    def images(self):
        """uint8 (n_images, h, w, 3), memory-mapped; rows follow :attr:`image_ids`."""
        return self._mapped("stimuli/images.npy", "|u1", "uint8", 4)

    def images_for(self, ids):
        """The images of the given 73k ids (e.g. ``stimulus_ids('test')``), uint8 (n, h, w, 3)."""
        ids = np.asarray(ids)
        known = self.image_ids
        rows = np.searchsorted(known, ids)
        if np.any(rows >= len(known)) or np.any(known[np.minimum(rows, len(known) - 1)] != ids):
            missing = ids[(rows >= len(known)) | (known[np.minimum(rows, len(known) - 1)] != ids)]
            raise ValueError(f"{self.path / 'stimuli/ids.npy'}: ids: no image for stimulus ids {missing[:5].tolist()}")
        return np.asarray(self.images[rows])

    @property
    def captions(self):
        """{stimulus id: [captions]}"""
        return self._native.captions()

    def roi_coords(self, atlas="nsdgeneral"):
        """int32 (n_voxels, 3) voxel (x, y, z) of each column of the atlas' betas, memory-mapped."""
        return self._mapped(f"rois/{atlas}.npy", "<i4", "int32", 2)

    @property
    def affine(self):
        """float64 (4, 4) voxel → scanner affine."""
        return np.array(self.meta["affine"], dtype=np.float64)


def load_subject(path):
    """Opens a prepared subject directory (raises FileNotFoundError when there is none)."""
    return Subject(path)
