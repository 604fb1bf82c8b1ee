"""``brainrecon group`` from Python, running the same library code as the CLI: a space shared by
a group of subjects, and a new subject brought into it from one or two sessions.

    import brainrecon
    from brainrecon import group
    root = group.simulate("sim", subjects=4, n_images=300, shared_images=100, sessions=10)
    for s in ("subj02", "subj03", "subj04"):           # the group; subj01 comes later
        brainrecon.prepare_subject(root, s, s)
        brainrecon.compute_features(s, "vae"); brainrecon.compute_features(s, "clip-text")
    group.prepare(["subj02", "subj03", "subj04"], "grp")
    group.fit("grp", method="shared", k=32)
    brainrecon.prepare_subject(root, "subj01", "subj01-s1", sessions="1")
    ...                                                  # its features, as above
    group.adapt("grp", "subj01-s1", "subj01-s1-shared")
    # then brainrecon.reconstruct("subj01-s1-shared", "grp/spaces/shared/decoders", ...)

Names and defaults follow the CLI's flags (``brainrecon group prepare|fit|adapt|curve``); each
function returns the report the CLI prints with ``--json``, as a dict. Bad input raises
ValueError or FileNotFoundError with the CLI's message; the work runs with the GIL released.
"""

import json
import os
from pathlib import Path

from . import _native


def _path(value):
    return None if value is None else os.fspath(getattr(value, "path", value))


def _names(value):
    """A list of names from a list or the CLI's comma-separated text."""
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    return [str(v) for v in value]


def simulate(out, subjects=3, n_images=300, shared_images=None, sessions=3,
             individual_share=0.3, image_size=64, volume=None, seed=0):
    """``brainrecon simulate --subjects N``: a simulated group written to ``out`` as an NSD
    root (subj01 … subjNN), each subject with its own tuning (variance share
    ``individual_share``) and ``shared_images`` images every subject sees (default a tenth of
    ``n_images``, at least 3). ``volume``: (X, Y, Z). Returns the root."""
    if volume is not None:
        volume = tuple(int(v) for v in volume)
        if len(volume) != 3:
            raise ValueError(f"volume: expected (X, Y, Z), three sizes, found {len(volume)} values")
    return Path(_native.group_simulate(
        os.fspath(out), int(subjects), int(n_images),
        None if shared_images is None else int(shared_images), int(sessions),
        float(individual_share), int(image_size), volume, int(seed)))


def prepare(subjects, out, roi="nsdgeneral", kinds=("vae", "clip-text"), align_share=0.5,
            seed=0):
    """``brainrecon group prepare``: a group folder ``out`` from prepared subjects (folders or
    :class:`brainrecon.data.Subject`), each with the same ``kinds`` of features from the same
    model. The images every subject saw are split into an align share (``align_share``) and
    a test share, with ``seed``. Writes OUT/group.json; nothing is copied.

    Returns the report: ``out``, ``subjects`` (name, path, n_voxels, n_train_rows, sessions
    each), ``n_shared``, ``n_align``, ``n_test``."""
    if isinstance(subjects, (str, os.PathLike)):
        subjects = [subjects]
    report = _native.group_prepare([_path(s) for s in subjects], _path(out), str(roi),
                                   _names(kinds), float(align_share), int(seed))
    return json.loads(report)


def fit(group, method="shared", k=64, name=None, n_iter=10, seed=0, targets=("z", "c"),
        cv="5", progress=False, memory_gb=None):
    """``brainrecon group fit``: a space shared by the group (``method`` shared, srm or
    detsrm; ``k`` dimensions; ``n_iter`` SRM iterations), written as GROUP/spaces/NAME
    (``name`` defaults to the method's), with its pooled subject and decoders for each of
    ``targets`` fitted on it (``cv`` as :func:`brainrecon.fit_decoders`: a number of folds,
    "loo" or "gcv"). ``progress`` prints the CLI's progress lines on stderr. ``memory_gb``
    (as ``--memory-gb``): refuse with ``ValueError``, before reading the train betas, a fit
    whose estimated peak memory is above this many GB (10⁹ bytes); default no budget.

    Returns the report: ``space``, ``method``, ``k``, ``n_pooled_rows``, ``seconds_space``,
    ``decoders`` (one summary per target)."""
    report = _native.group_fit(_path(group), str(method), None if name is None else str(name),
                               int(k), int(n_iter), int(seed), _names(targets), str(cv),
                               bool(progress),
                               None if memory_gb is None else float(memory_gb))
    return json.loads(report)


def adapt(group, subject, out, space="shared", sessions=None, via=None, map=None,
          eval_subject=None):
    """``brainrecon group adapt``: brings the prepared subject ``subject`` (with features)
    into the group's space ``space`` and writes it to ``out`` as a prepared subject whose one
    atlas, ``shared``, holds the space's coordinates; the group's decoders
    (GROUP/spaces/SPACE/decoders) then apply to it.

    ``sessions``: its train sessions to use ("1", "1-2", an int or a list; default all);
    ``via``: features (default), shared-images or both; ``map``: encoding (the default with
    features), ridge, procrustes or orthogonal; ``eval_subject``: the same person prepared
    from all sessions, to score on its test images. Returns the report (a dict)."""
    if sessions is not None and not isinstance(sessions, str):
        sessions = ",".join(str(int(s)) for s in ([sessions] if isinstance(sessions, int)
                                                  else sessions))
    report = _native.group_adapt(_path(group), str(space), _path(subject), _path(out),
                                 sessions, None if via is None else str(via),
                                 None if map is None else str(map), _path(eval_subject))
    return json.loads(report)


def curve(group, spaces, nsd_root, subject, out, trials=(100, 250, 500, 750, 1500, "all"),
          seeds=3, targets=("z", "c"), progress=False):
    """``brainrecon group curve``: scores the new ``subject`` (subj01 … subj08 of
    ``nsd_root``, not one of the group's) against its first ``trials`` train trials in
    acquisition order (each labelled with NSD's minutes, 4 s a trial), adapted into each of
    ``spaces`` (each NAME[:VIA[:MAP]], e.g. "srm:features:encoding"), beside the
    within-subject route fitted on the same rows (those trials and the align-image rows);
    the held-out images are split per seed (``seeds`` of them) into validation images, which
    choose the best group method, and test images, which score. ``trials``: counts, "all" for
    every trial. Writes OUT/curve.json, curve.md and curve.svg.

    Returns the curve: ``group``, ``subject``, ``targets``, ``seeds`` (each seed's
    validation and test ids), ``points`` (method, trials, all_trials, minutes, sessions,
    n_align_rows, n_rows, per_seed, two_way_mean, two_way_sd, ratio_to_ceiling each),
    ``ceiling`` and ``ceiling_sd``."""
    if isinstance(spaces, str):
        spaces = [spaces]
    if isinstance(trials, (str, int)):
        trials = _names(str(trials))
    counts = []
    for s in trials:
        if isinstance(s, str) and s.strip() == "all":
            counts.append(None)
            continue
        try:
            count = int(s)
        except (TypeError, ValueError):
            count = 0
        if count < 1:
            raise ValueError(f"trials: expected counts ≥ 1 or 'all', found '{s}'")
        counts.append(count)
    if int(seeds) < 1:
        raise ValueError(f"seeds: expected at least 1, found {seeds}")
    report = _native.group_curve(_path(group), [str(s) for s in spaces], _path(nsd_root),
                                 str(subject), _path(out), counts, int(seeds),
                                 _names(targets), bool(progress))
    return json.loads(report)


__all__ = ["simulate", "prepare", "fit", "adapt", "curve"]
