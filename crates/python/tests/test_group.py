"""brainrecon.group end to end from Python on a tiny simulated group: simulate three subjects →
prepare each → features → group prepare (two of them) → fit a shared space → adapt the third
from one session, whose adapted subject the ordinary reader opens; and the group commands' bad
input."""

import json
from pathlib import Path

import numpy as np
import pytest

import brainrecon
from brainrecon import group


@pytest.fixture(scope="module")
def tiny_group(tmp_path_factory):
    work = tmp_path_factory.mktemp("group")
    root = group.simulate(work / "sim", subjects=3, n_images=40, shared_images=12, sessions=2,
                          image_size=16, volume=(14, 18, 12), seed=1)
    assert (root / "nsddata").is_dir()

    def prepared(name, out, sessions=None):
        subject = brainrecon.prepare_subject(root, name, work / out, sessions=sessions,
                                             rois=("nsdgeneral",))
        for kind in ("vae", "clip-text"):
            brainrecon.compute_features(subject.path, kind)
        return subject.path

    members = [prepared("subj02", "subj02"), prepared("subj03", "subj03")]
    return {"work": work, "root": root, "members": members,
            "new": prepared("subj01", "subj01-s1", sessions="1"),
            "new_all": prepared("subj01", "subj01")}


def test_prepare_fit_adapt(tiny_group):
    work = tiny_group["work"]
    out = work / "grp"
    report = group.prepare(tiny_group["members"], out)
    assert len(report["subjects"]) == 2
    assert report["n_shared"] == 12
    assert report["n_align"] + report["n_test"] == 12
    meta = json.loads((out / "group.json").read_text())
    assert meta["roi"] == "nsdgeneral" and meta["kinds"] == ["vae", "clip-text"]

    fitted = group.fit(out, method="shared", k=4, cv="gcv")
    assert fitted["method"] == "shared" and fitted["k"] == 4
    assert fitted["n_pooled_rows"] > 0
    assert len(fitted["decoders"]) == 2
    for target in ("z", "c"):
        assert (out / "spaces" / "shared" / "decoders" / target / "model.json").exists()

    adapted = group.adapt(out, tiny_group["new"], work / "subj01-s1-shared",
                          eval_subject=tiny_group["new_all"])
    assert adapted["space"] == "shared"
    assert adapted["sessions"] == [1]
    assert adapted["n_train"] > 0
    # an adapted subject is an ordinary prepared subject, its one atlas the space's 4 dims
    subject = brainrecon.load_subject(work / "subj01-s1-shared")
    betas = subject.betas("shared")
    assert betas.shape[1] == 4
    assert np.isfinite(np.asarray(betas)).all()

    # the curve: the new subject from 10 and all trials, adapted into the space, two seeds
    points = group.curve(out, ["shared"], tiny_group["root"], "subj01", work / "curve",
                         trials=(10, "all"), seeds=2)
    assert {p["trials"] for p in points["points"]} >= {10}
    assert all(len(p["per_seed"]) == 2 for p in points["points"])
    assert 0.0 <= points["ceiling"] <= 1.0
    assert (work / "curve" / "curve.json").exists()


def test_bad_input(tiny_group, tmp_path):
    with pytest.raises(ValueError, match="at least 2 prepared subjects, found 1"):
        group.prepare(tiny_group["members"][:1], tmp_path / "one")
    with pytest.raises(ValueError, match="align-share"):
        group.prepare(tiny_group["members"], tmp_path / "share", align_share=1.5)
    with pytest.raises(FileNotFoundError):
        group.fit(tmp_path / "no-such-group", k=4)
    budget = tmp_path / "budget"
    group.prepare(tiny_group["members"], budget)
    with pytest.raises(ValueError, match="--memory-gb: expected a positive number"):
        group.fit(budget, k=4, memory_gb=-1)
    with pytest.raises(ValueError, match="estimated before reading"):
        group.fit(budget, k=4, memory_gb=1e-6)
    assert not (budget / "spaces" / "shared").exists()
    with pytest.raises(ValueError, match="trials"):
        group.curve(tmp_path / "g", "shared", tiny_group["root"], "subj01", tmp_path / "c",
                    trials=(0, "all"))
