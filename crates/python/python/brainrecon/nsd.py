"""NSD preparation and the synthetic subject, running the same code as the CLI."""

import json
from pathlib import Path

from . import _native


def prepare(nsd_root, subject, out, sessions=None, rois=("nsdgeneral", "streams", "prf-visualrois"),
            zscore="session", average_train=False, image_size=None, progress=True):
    """``brainrecon nsd prepare``: reads NSD as downloaded and writes a prepared subject.

    subject: 1..8 or "subj01"; sessions: e.g. "1-10,12" (default: all in responses.tsv).
    ``progress`` draws the CLI's progress bar on stderr. Returns the report (a dict)."""
    report = _native.nsd_prepare(str(nsd_root), str(subject), str(out),
                                 sessions=None if sessions is None else str(sessions),
                                 rois=list(rois), zscore=zscore, average_train=average_train,
                                 image_size=image_size, progress=progress)
    return json.loads(report)


def simulate(out, n_images=300, seed=0, layout="prepared", image_size=64, sessions=3):
    """``brainrecon simulate``: a seeded synthetic subject (layout 'prepared' or 'nsd')."""
    return Path(_native.simulate_subject(str(out), n_images=n_images, seed=seed, layout=layout,
                                         image_size=image_size, sessions=sessions))
