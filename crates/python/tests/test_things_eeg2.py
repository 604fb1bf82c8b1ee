"""NumPy reads what brainrecon writes as THINGS-EEG2: `simulate --kind eeg` pickles its dicts
as NumPy 1.x's np.save did (protocol 3, numpy.core.multiarray), and np.load(...).item() returns
the data set's dicts with the shapes and values the layout reader sees."""

import json
import os
import subprocess

import numpy as np
import pytest


@pytest.mark.skipif(not os.environ.get("BRAINRECON_CLI"),
                    reason="the simulated data set is made by the CLI (BRAINRECON_CLI)")
def test_numpy_loads_the_simulated_things_eeg2(tmp_path):
    cli = os.environ["BRAINRECON_CLI"]
    subprocess.run([cli, "simulate", "--kind", "eeg", "--out", "eeg", "--subjects", "1",
                    "--image-size", "16"], check=True, capture_output=True, cwd=tmp_path)
    root = tmp_path / "eeg"
    pre = root / "eeg_dataset/preprocessed_data/sub-01"
    train = np.load(pre / "preprocessed_eeg_training.npy", allow_pickle=True).item()
    test = np.load(pre / "preprocessed_eeg_test.npy", allow_pickle=True).item()
    assert sorted(train) == ["ch_names", "preprocessed_eeg_data", "times"]
    assert train["preprocessed_eeg_data"].shape == (288, 4, 17, 100)
    assert train["preprocessed_eeg_data"].dtype == np.float64
    assert test["preprocessed_eeg_data"].shape == (32, 20, 17, 100)
    assert train["ch_names"][:4] == ["Pz", "P3", "P7", "O1"]
    np.testing.assert_allclose(train["times"], np.round(np.arange(-20, 80) / 100, 2))
    assert np.isfinite(train["preprocessed_eeg_data"]).all()
    meta = np.load(root / "image_set/image_metadata.npy", allow_pickle=True).item()
    truth = json.loads((root / "truth/eeg.json").read_text())
    assert meta["train_img_files"] == [i["file"] for i in truth["training"]]
    assert meta["test_img_concepts"] == [i["concept"] for i in truth["test"]]
    for concept, name in zip(meta["train_img_concepts"], meta["train_img_files"]):
        assert (root / "image_set/training_images" / concept / name).is_file()
