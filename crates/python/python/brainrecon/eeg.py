"""``brainrecon eeg`` from Python, running the same library code as the CLI: what a person saw,
decoded from EEG (THINGS-EEG2's layout) by zero-shot retrieval, as NICE and ATM score it.

    from brainrecon import eeg
    eeg.preprocess("THINGS-EEG2", "things-100hz")             # raw recordings → shipped layout
    eeg.embed("things-100hz", "embeddings")                    # image embeddings (shapes-blip)
    eeg.fit("things-100hz", "embeddings", "nice-sub-01", subject="sub-01")
    eeg.fit("things-100hz", "embeddings", "ridge-sub-01", subject="sub-01", method="ridge")
    eeg.fit("things-100hz", "embeddings", "nice-loso-sub-01", leave_out="sub-01")
    scores = eeg.evaluate("things-100hz", ["nice-sub-01", "ridge-sub-01", "nice-loso-sub-01"])
    recons = eeg.reconstruct("things-100hz", "nice-sub-01", "embeddings", "recons-sub-01")

The data are THINGS-EEG2 as it ships (eeg_dataset/preprocessed_data/sub-XX,
image_set/image_metadata.npy and the image folders), ``brainrecon simulate --kind eeg``'s copy
of it, or :func:`preprocess`'s output. Names and defaults follow the CLI's flags
(``brainrecon eeg preprocess|embed|fit|eval|reconstruct``); each function returns the report the CLI prints
with ``--json``, as a dict. Bad input raises ValueError or FileNotFoundError with the CLI's
message; the work runs with the GIL released.
"""

import os

from . import _native


def _path(value):
    return None if value is None else os.fspath(getattr(value, "path", value))


def _names(value):
    """A list of names from a name, a list or the CLI's comma-separated text."""
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    return [str(v) for v in value]


def preprocess(data, out, subjects=None, sfreq=100.0, tmin=-0.2, tmax=0.8,
               channels="occipital-parietal", mvnn="time", progress=False):
    """``brainrecon eeg preprocess``: THINGS-EEG2's raw recordings (DATA/eeg_dataset/raw_data)
    preprocessed as the data set's code does and written to ``out`` in the shipped layout
    (OUT/eeg_dataset/preprocessed_data/sub-XX, with OUT/image_set linked to the data set's
    images), so that :func:`fit` reads ``out``.

    ``subjects``: the subjects to preprocess ("sub-01", a list; default every one in
    raw_data); epochs from ``tmin`` to ``tmax`` seconds around the image's onset, resampled
    to ``sfreq`` Hz; ``channels``: "occipital-parietal" (the shipped 17) or "all" (NICE's
    63); ``mvnn``: multivariate noise normalisation over "time" (the data set's default),
    "epochs", or "none". ``progress`` prints a line per subject on stderr.

    Returns the report: ``out``, ``options``, ``subjects`` (subject, training and test
    shapes [conditions, repetitions, channels, times], ch_names each) and ``images``."""
    subjects = None if subjects is None else _names(subjects)
    return _native.eeg_preprocess(_path(data), _path(out), subjects, float(sfreq), float(tmin),
                                  float(tmax), str(channels), str(mvnn), bool(progress))


def bids_prepare(bids_root, subject, task, out, images=None, sfreq=100.0, channels="all",
                 mvnn="epochs"):
    """``brainrecon eeg bids-prepare``: an image experiment in BIDS EEG
    (sub-XX/eeg/sub-XX_task-TASK_eeg.vhdr and _events.tsv; a lab's own, or THINGS-EEG1 as
    OpenNeuro ds003825 ships it) made into THINGS-EEG2's layout in ``out``, so that
    :func:`embed`, :func:`fit` and :func:`evaluate` read it. Each row's image comes from
    ``stim_file`` (or ds003825's ``stim``); test rows have ``isteststim`` 1 or ``trial_type``
    "test". ``images``: the folder holding the images the events name, linked into
    OUT/image_set. Returns the report (shapes, ch_names, ``onsets`` "seconds" or "samples",
    ``dropped``, ``images_linked``)."""
    return _native.eeg_bids_prepare(_path(bids_root), str(subject), str(task), _path(out),
                                    _path(images), float(sfreq), str(channels), str(mvnn))


def meg_prepare(data, participant, out, images=None, tmin=None, tmax=None, meg_only=True,
                exclude_bads=True):
    """``brainrecon eeg meg-prepare``: a THINGS-MEG participant (``participant`` "P1", 1 or
    "sub-BIGMEG1") of OpenNeuro ds004212 (``data``: its root, or the folder of
    derivatives/preprocessed/preprocessed_P{n}-epo.fif and its split parts) made into
    THINGS-EEG2's layout in ``out``, the participant as sub-0n, so that :func:`embed`,
    :func:`fit` and :func:`evaluate` read it. Each epoch's image comes from the epochs'
    metadata (``image_path``), and ``trial_type`` splits them: "exp" training, "test" test,
    "catch" left out. ``images``: the THINGS images' folder, linked into OUT/image_set;
    ``tmin``/``tmax`` crop the epochs (s); ``meg_only`` keeps the MEG sensors alone and
    ``exclude_bads`` leaves the bad channels out. Returns the report (shapes, ch_names,
    ``catch``, ``files``, ``images_linked``)."""
    return _native.eeg_meg_prepare(_path(data), str(participant), _path(out), _path(images),
                                   None if tmin is None else float(tmin),
                                   None if tmax is None else float(tmax), bool(meg_only),
                                   bool(exclude_bads))


def embed(data, out, model="shapes-blip", batch=64, progress=False):
    """``brainrecon eeg embed``: every training and test image of the data set embedded with
    ``model`` (the project's "shapes-blip", or a transformers BLIP folder), ``batch`` images
    per forward pass. Writes OUT/training.npy and OUT/test.npy (float32 [images, d], rows in
    image_metadata.npy's order) and OUT/embeddings.json. To decode into a CLIP's space, write
    the same two files with your CLIP instead and pass their folder to :func:`fit`.

    Returns the record: ``format``, ``model``, ``fingerprint``, ``width``, ``training`` and
    ``test`` (image counts)."""
    return _native.eeg_embed(_path(data), _path(out), str(model), int(batch), bool(progress))


def fit(data, embeddings, out, subject=None, leave_out=None, method="nice", epochs=40,
        batch=256, lr=2e-4, checkpoint_every=5, seed=0, window=None, progress=False):
    """``brainrecon eeg fit``: a decoder from EEG epochs to the image embeddings in
    ``embeddings`` (:func:`embed`'s folder or your own), written to ``out``.

    Give exactly one of ``subject`` (train on that subject's training half) and ``leave_out``
    (train on every other subject's, pooled, and score on this one). ``method``: "nice"
    (NICE's contrastive encoder: ``epochs``, ``batch`` trials per batch, Adam at ``lr``,
    a checkpoint every ``checkpoint_every`` epochs — the same call resumes an interrupted
    fit; ``seed`` for its initial values, batch order and dropout), "atm" (ATM's encoder:
    NICE's convolutions behind a channel-attention Transformer, trained the same way) or
    "ridge" (the linear
    baseline; ``window``: the (start, end) samples used, default the whole epoch).

    Returns the fit's report: ``out``, ``already_done`` and ``meta`` (method, trained_on,
    test_subject, window, embeddings, training_trials, epoch_losses, seconds, ...)."""
    if (subject is None) == (leave_out is None):
        raise ValueError("give exactly one of subject and leave_out")
    if window is not None:
        window = tuple(int(w) for w in window)
        if len(window) != 2:
            raise ValueError(f"window: expected (start, end) samples, found {len(window)} values")
    return _native.eeg_fit(_path(data), _path(embeddings), _path(out),
                           None if subject is None else str(subject),
                           None if leave_out is None else str(leave_out), str(method),
                           int(epochs), int(batch), float(lr), int(checkpoint_every), int(seed),
                           window, bool(progress))


def evaluate(data, decoders, ways=None, draws=100, seed=0, out=None):
    """``brainrecon eeg eval``: each decoder folder in ``decoders`` scored on its own test
    subject's test concepts by zero-shot retrieval — top-1 and top-5 among all test images,
    and k-way top-1 for each k of ``ways`` (default 2, 4, 10 and 50 where there are that many
    images) with k − 1 distractors drawn ``draws`` times per trial from ``seed``. ``out``: also
    write the scores to this JSON file.

    Returns the scores: ``rows`` (decoder, method, subject, trained_on, scores, ms_per_trial
    each), ``summaries`` (mean and s.d. per method and setting, "within" or
    "leave-one-out"), ``chance_top1`` and ``chance_top5``."""
    if isinstance(decoders, (str, os.PathLike)):
        decoders = [decoders]
    if ways is not None:
        ways = [int(k) for k in (_names(ways) if isinstance(ways, str)
                                 else [ways] if isinstance(ways, int) else ways)]
    return _native.eeg_eval(_path(data), [_path(d) for d in decoders], ways, int(draws),
                            int(seed), _path(out))


def reconstruct(data, decoder, embeddings, out, model="shapes-ldm", prompt="a {concept}",
                samples=1, steps=50, strength=0.8, guidance=5.0, seed=42, limit=None,
                ceiling=False, progress=False):
    """``brainrecon eeg reconstruct``: the test images that ``decoder``'s test subject saw,
    reconstructed from their decoded embeddings. Two ridge maps fitted on the training images
    take an embedding (``embeddings``, the folder the decoder was fitted to) to ``model``'s
    VAE latent z and to the text context of ``prompt`` ("{concept}": the THINGS folder's
    words); the decoded z's image is noised to ``strength`` and denoised under the decoded
    context, ``samples`` times with ``steps`` DDIM steps. ``limit``: only the first N test
    images. ``ceiling``: also from each image's own embedding (OUT/own-embedding), what a
    perfect decoder would give. Writes OUT/decoded-z, OUT/sample-K, OUT/stimuli (``<i>.png``),
    OUT/comparison.png and OUT/reconstruction.json; a second call continues or finds it done.

    Returns the report: ``images``, ``map_r2_z`` and ``map_r2_c`` (cross-validated R² of the
    maps), and ``sets``: per image set (``decoded z``, ``sample 1``, …) its ``pixcorr``,
    ``ssim``, ``two_way_pixels`` and ``scores`` (``brainrecon eval``'s JSON)."""
    return _native.eeg_reconstruct(_path(data), _path(decoder), _path(embeddings), _path(out),
                                   str(model), str(prompt), int(samples), int(steps),
                                   float(strength), float(guidance), int(seed),
                                   None if limit is None else int(limit), bool(ceiling),
                                   bool(progress))


__all__ = ["preprocess", "bids_prepare", "meg_prepare", "embed", "fit", "evaluate",
           "reconstruct"]
