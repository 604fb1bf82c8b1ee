"""The reconstruction routes from Python, running the same library code as the CLI: prepare a
subject, compute its stimulus features, fit the decoders, reconstruct the test images.

    import brainrecon
    subject = brainrecon.prepare_subject("nsd", "subj01", "prepared/subj01")
    brainrecon.compute_features(subject.path, "vae")
    brainrecon.compute_features(subject.path, "clip-text")
    brainrecon.fit_decoders(subject.path, ["z", "c"], "decoders")
    # the caption route: brainrecon.caption(...), then reconstruct(method="caption", ...)
    recons = brainrecon.reconstruct(subject.path, "decoders", samples=1, steps=25)
    for stimulus_id, images in recons:
        images[0].save(f"{stimulus_id}.png")

Names and defaults follow the CLI's flags (``brainrecon features``, ``fit``, ``reconstruct``).
Bad input raises ValueError or FileNotFoundError with the CLI's message, which names the file
and field; the work runs with the GIL released.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import _native, nsd
from .data import Subject


def prepare_subject(nsd_root, subject, out, sessions=None,
                    rois=("nsdgeneral", "streams", "prf-visualrois"), zscore="session",
                    average_train=False, image_size=None, progress=False):
    """``brainrecon nsd prepare``: reads NSD as downloaded (or a simulated NSD tree,
    ``brainrecon.nsd.simulate(..., layout="nsd")``) and writes a prepared subject to ``out``.
    Returns it as a :class:`brainrecon.data.Subject`."""
    nsd.prepare(nsd_root, subject, out, sessions=sessions, rois=rois, zscore=zscore,
                average_train=average_train, image_size=image_size, progress=progress)
    return Subject(out)


def _path(value):
    return None if value is None else os.fspath(getattr(value, "path", value))


def compute_features(subject, kind, model=None, out=None, size=None, sample=False, seed=0,
                     batch=8, layer="last", normalize=False, dtype="f32", progress=False):
    """``brainrecon features``: per-stimulus features of a prepared subject (``subject`` is its
    folder or a :class:`Subject`), written to ``out`` (default SUBJECT/features) and cached per
    stimulus. ``kind``: vae (z), clip-text (c), clip-image, blip-vision or blip-text;
    ``model``: shapes-ldm (built in, the default), a diffusers folder or a cached id.

    Returns one summary dict per array written (``kind``, ``array``, ``shape``, ``n_images``,
    ``computed``, ``cached``); ``np.load(summary["array"], mmap_mode="r")`` reads it."""
    report = _native.route_features(_path(subject), str(kind), model=_path(model), out=_path(out),
                                    size=size, sample=bool(sample), seed=int(seed),
                                    batch=int(batch), layer=str(layer),
                                    normalize=bool(normalize), dtype=dtype, progress=progress)
    return json.loads(report)


def _target_folder(target):
    """The folder name of a target (reconstruct reads DECODERS/z and DECODERS/c)."""
    name = os.path.basename(os.fspath(target))
    return name[:-4] if name.endswith(".npy") else name.replace(":", "-")


def fit_decoders(subject, target, out, roi=None, features=None, alphas=None, cv="5",
                 average_train=False, standardize=None, no_intercept=False, precision="f64",
                 target_block=None):
    """``brainrecon fit``: ridge decoders from an ROI's betas to per-image targets.

    ``target`` is one target (z, c, clip-image, blip, pixels:SIZE or a features .npy), written
    to the decoder folder ``out``; or a list of them, each written to ``out/<target>`` (so
    ``["z", "c"]`` makes the decoders folder :func:`reconstruct` takes). ``roi`` defaults to the
    target's (streams/early for z, streams/ventral for c); ``standardize`` None takes the
    target's default. Returns the fit's summary (a dict; for a list, a dict per target)."""
    if isinstance(target, (list, tuple)):
        return {t: fit_decoders(subject, t, Path(out) / _target_folder(t), roi=roi,
                                features=features, alphas=alphas, cv=cv,
                                average_train=average_train, standardize=standardize,
                                no_intercept=no_intercept, precision=precision,
                                target_block=target_block)
                for t in target}
    report = _native.route_fit(_path(subject), str(target), os.fspath(out), roi=roi,
                               features=_path(features),
                               alphas=None if alphas is None else [float(a) for a in alphas],
                               cv=str(cv), average_train=bool(average_train),
                               standardize=standardize, intercept=not no_intercept,
                               precision=precision, target_block=target_block)
    return json.loads(report)


def caption(subject, out, source="decoded", decoders=None, features=None, blip="shapes-blip",
            beams=3, max_length=20, min_length=5, repetition_penalty=1.5,
            beam_scoring="published", prompt="a picture of ", limit=None, progress=False):
    """``brainrecon caption``: BLIP captions of the test images, from the image tokens the
    ``blip`` decoder in ``decoders`` predicts (``source="decoded"``, the caption route) or from
    the stimuli's own tokens (``source="features"``, the captioner's ceiling). Writes
    ``out/captions.json``, which ``reconstruct(method="caption", captions=out)`` takes, and
    returns its contents (a dict; ``items`` holds each test image's ``id`` and ``caption``)."""
    report = _native.route_caption(
        _path(subject), os.fspath(out), source=str(source), decoders=_path(decoders),
        features=_path(features), blip=_path(blip), beams=int(beams),
        max_length=int(max_length), min_length=int(min_length),
        repetition_penalty=float(repetition_penalty), beam_scoring=str(beam_scoring),
        prompt=str(prompt), limit=limit, progress=progress)
    return json.loads(report)


class Reconstruction:
    """The images of a reconstruction run, in memory.

    ``ids``: the test stimuli's 73k ids; ``images[i]``: the samples (PIL images) of ``ids[i]``;
    ``decoded_z[i]``: the picture of its decoded z (None for routes without z); ``summary``:
    the run's counts; ``manifest``: its manifest.json; ``out``: the folder (None when the run
    went to a temporary one, removed since). Iterating yields ``(id, [PIL images])``."""

    def __init__(self, ids, images, decoded_z, summary, manifest, out):
        self.ids = ids
        self.images = images
        self.decoded_z = decoded_z
        self.summary = summary
        self.manifest = manifest
        self.out = out

    def __len__(self):
        return len(self.ids)

    def __iter__(self):
        return iter(zip(self.ids, self.images))

    def __repr__(self):
        samples = len(self.images[0]) if self.images else 0
        return (f"Reconstruction({len(self.ids)} test images, {samples} samples each, "
                f"method {self.manifest['options']['method']!r})")

    def arrays(self):
        """uint8 (n_images, samples, height, width, 3)."""
        return np.stack([np.stack([np.asarray(im) for im in samples]) for samples in self.images])


def _read_images(folder, ids):
    from PIL import Image

    def load(path):
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")

    return [load(folder / f"{i}.png") for i in ids]


def reconstruct(subject, decoders=None, method="linear", model="shapes-ldm", samples=5,
                steps=50, seed=42, out=None, captions=None, b2c=None, init="noise",
                strength=0.8, guidance=5.0, posterior_mean=False, limit=None, batch=None,
                dtype="f32", progress=False):
    """``brainrecon reconstruct``: reconstructs the subject's test images.

    ``method``: linear (decoded z and c, Takagi & Nishimoto 2023), z-only, c-only, b2c (with
    ``b2c``, a trained B2C folder) or caption (with ``captions``, the file ``brainrecon caption
    decode`` wrote); ``decoders`` is the folder holding z/ and c/ (:func:`fit_decoders`).
    ``out``: the reconstruction folder (the CLI's files, resumable; ``brainrecon eval`` reads
    it); None runs in a temporary folder and keeps only the images in memory. ``limit``: only
    the first N test images. Returns a :class:`Reconstruction`."""
    temporary = out is None
    folder = Path(tempfile.mkdtemp(prefix="brainrecon-recons-")) / "recons" if temporary \
        else Path(out)
    try:
        report = _native.route_reconstruct(
            _path(subject), os.fspath(folder), method=str(method), decoders=_path(decoders),
            captions=_path(captions), b2c=_path(b2c), init=str(init), model=_path(model),
            samples=int(samples), strength=float(strength), steps=int(steps),
            guidance=float(guidance), seed=int(seed), posterior_mean=bool(posterior_mean),
            limit=limit, batch=batch, dtype=dtype, progress=progress)
        summary = json.loads(report)
        manifest = json.loads((folder / "manifest.json").read_text())
        ids = list(manifest["ids"])
        images = [[] for _ in ids]
        decoded_z = [None] * len(ids)
        for name, _ in _image_sets(manifest):
            pictures = _read_images(folder / name, ids)
            if name == "decoded-z":
                decoded_z = pictures
            else:
                for row, picture in zip(images, pictures):
                    row.append(picture)
    finally:
        if temporary:
            shutil.rmtree(folder.parent, ignore_errors=True)
    return Reconstruction(ids, images, decoded_z, summary, manifest,
                          None if temporary else folder)


def _image_sets(manifest):
    """The run's image folders, as the manifest's method names them (Manifest::image_sets)."""
    options = manifest["options"]
    method = options["method"]
    sets = []
    if method in ("linear", "z-only", "caption") or options.get("init_z"):
        sets.append(("decoded-z", "decoded z"))
    if method != "z-only":
        sets += [(f"sample-{k}", f"sample {k}") for k in range(1, options["samples"] + 1)]
    return sets


def encode_runs(subject, bands, out, dataset_features=None, allow_weak_bands=False, folds=None,
                text_model="word2vec-movie", layer="last", test_runs=(), align="mean",
                delays=(), delay_mean=(), pca=None, alphas=(1, 10, 100, 1000, 10000, 100000),
                n_iter=20, permutations=1000, block=10, unique=False, seed=0, cortex="auto",
                progress=False):
    """``brainrecon encode-runs``: banded encoding models (one ridge penalty per band and voxel)
    of a prepared run set (``brainrecon bids prepare``), written to ``out`` as the CLI writes it
    (encoding.json, NIfTI maps in out/maps, report.html).

    ``bands``: annotation kinds (speech, objects, story, ...), ``KIND:FEATURES`` or
    ``NAME=DIR``. Returns a dict of float32 maps over the run set's voxels: ``r``, ``r2``,
    ``p``, ``q`` (voxels,), ``r2_split`` (bands, voxels), ``unique`` (bands, voxels; with
    ``unique=True``), and ``summary`` (the CLI's JSON summary, with ``bands`` in order).
    ``cortex``: where the report draws its maps (``auto``, ``none``, ``fsaverage5``,
    ``stretch`` or a FreeSurfer subject folder), written to out/cortex."""
    report = _native.route_encode_runs(
        _path(subject), [str(b) for b in bands], os.fspath(out),
        dataset_features=dataset_features, allow_weak_bands=bool(allow_weak_bands), folds=folds,
        text_model=_path(text_model), layer=str(layer), test_runs=[str(t) for t in test_runs],
        align=str(align), delays=[int(d) for d in delays],
        delay_mean=[int(d) for d in delay_mean], pca=pca, alphas=[float(a) for a in alphas],
        n_iter=int(n_iter), permutations=int(permutations), block=int(block),
        unique=bool(unique), seed=int(seed), cortex=_path(cortex), progress=progress)
    maps = {"summary": json.loads(report)}
    for name in ("r", "r2", "p", "q", "r2_split", "unique"):
        path = Path(out) / f"{name}.npy"
        if path.exists():
            maps[name] = np.load(path)
    return maps


def train_word2vec(corpus, out, markup="auto", dim=100, window=5, negative=5, min_count=5,
                   epochs=5, sample=1e-3, alpha=0.025, seed=0, progress=False):
    """``brainrecon train-word2vec --corpus``: skip-gram vectors of a text corpus, written to
    ``out`` (vectors.bin in word2vec's binary format, training.json).

    ``corpus``: a text file or folder, or a list of them (folders are searched for ``*.txt``
    files and files without an extension, as WikiExtractor writes a Wikipedia dump). Lines are
    split into words as ``encode_runs`` and ``features text`` split them (ds005531's markup
    where a file carries its ``[HH:MM:SS]`` stamps; Japanese segmented), so ``out/vectors.bin``
    serves as their ``text_model``. Defaults are gensim's ``Word2Vec(sg=1)``. Returns the
    summary as a dict (vocabulary, dim, corpus_words, corpus_words_in_vocabulary, files)."""
    paths = [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus)
    summary = _native.route_train_word2vec(
        [os.fspath(p) for p in paths], os.fspath(out), markup=str(markup), dim=int(dim),
        window=int(window), negative=int(negative), min_count=int(min_count),
        epochs=int(epochs), sample=float(sample), alpha=float(alpha), seed=int(seed),
        progress=bool(progress))
    return json.loads(summary)


__all__ = ["prepare_subject", "compute_features", "fit_decoders", "caption", "reconstruct",
           "Reconstruction", "encode_runs", "train_word2vec"]
