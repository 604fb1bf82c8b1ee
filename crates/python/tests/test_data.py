"""load_subject on a synthetic prepared subject; a decoder fitted and scored as in the README."""

import json

import numpy as np
import pytest

import brainrecon


@pytest.fixture(scope="module")
def subject_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "subj01"
    return brainrecon.nsd.simulate(out, n_images=40, seed=3, image_size=32, sessions=2)


def test_betas_are_memory_mapped_views_of_the_files(subject_dir):
    subject = brainrecon.load_subject(subject_dir)
    train = subject.betas("nsdgeneral", "train")
    assert isinstance(train, np.memmap) and train.dtype == np.float32 and not train.flags.writeable
    np.testing.assert_array_equal(train, np.load(subject_dir / "betas/nsdgeneral/train.npy"))
    assert train.shape == (subject.meta["n_train_trials"], subject.rois["nsdgeneral"])
    assert len(subject.stimulus_ids("train")) == train.shape[0]
    assert subject.betas("nsdgeneral", "test").shape[0] == subject.meta["n_test_images"]
    images = subject.images
    assert isinstance(images, np.memmap) and images.shape[1:] == (32, 32, 3)
    coords = subject.roi_coords("nsdgeneral")
    assert coords.shape == (train.shape[1], 3)
    assert subject.affine.shape == (4, 4)
    assert set(subject.captions) == set(subject.image_ids.tolist())


def test_a_label_selects_its_columns(subject_dir):
    subject = brainrecon.load_subject(subject_dir)
    label = next(name for name in subject.rois if name.startswith("streams/"))
    betas = subject.betas(label, "train")
    atlas = subject.betas("streams", "train")
    values = np.load(subject_dir / "rois/streams_labels.npy")
    meta = json.loads((subject_dir / "subject.json").read_text())
    value = next(l["value"] for a in meta["atlases"] if a["name"] == "streams"
                 for l in a["labels"] if f"streams/{l['name']}" == label)
    np.testing.assert_array_equal(betas, atlas[:, values == value])


def test_errors_name_the_file_and_field(subject_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="subject.json: file not found"):
        brainrecon.load_subject(tmp_path / "nothing")
    subject = brainrecon.load_subject(subject_dir)
    with pytest.raises(FileNotFoundError, match="prepare with --average-train"):
        subject.betas("nsdgeneral", "train_averaged")
    with pytest.raises(ValueError, match=r"rois: expected one of .*'V9' \(no such ROI\)"):
        subject.betas("V9")
    with pytest.raises(ValueError, match="split: expected 'train', 'train_averaged' or 'test'"):
        subject.betas("nsdgeneral", "val")
    with pytest.raises(ValueError, match="nsdgeneral.npy.*dtype: expected float32"):
        brainrecon._native.npy_layout(str(subject_dir / "rois/nsdgeneral.npy"), "<f4", "float32")


def test_readme_example_decodes_image_pixels(subject_dir):
    subject = brainrecon.load_subject(subject_dir)
    X_train, X_test = subject.betas("nsdgeneral", "train"), subject.betas("nsdgeneral", "test")
    train_images = subject.images_for(subject.stimulus_ids("train"))
    test_images = subject.images_for(subject.stimulus_ids("test"))
    Y_train = train_images.reshape(len(train_images), -1) / np.float32(255)
    decoder = brainrecon.RidgeCV(alphas=np.logspace(0, 5, 11), cv=5)
    decoder.fit(X_train, Y_train, groups=subject.stimulus_ids("train"))
    recon = decoder.predict(X_test).reshape(test_images.shape).clip(0, 1)
    truth = test_images / np.float32(255)
    pixcorr = brainrecon.metrics.pixcorr(recon, truth)
    two_way = brainrecon.metrics.two_way_identification(recon, truth)
    assert np.nanmean(pixcorr) > 0.1 and two_way > 0.6, (np.nanmean(pixcorr), two_way)
