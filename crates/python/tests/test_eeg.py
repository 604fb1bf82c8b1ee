"""brainrecon.eeg end to end from Python: a simulated THINGS-EEG2 of two subjects (made by the
CLI, `simulate --kind eeg`) → image embeddings → a ridge decoder on sub-01 and NICE for two
epochs leaving sub-01 out → both scored by zero-shot retrieval; the committed raw recordings
preprocessed into the shipped layout; and bad input."""

import json
import os
import subprocess
from pathlib import Path

import pytest

import brainrecon
from brainrecon import _native, eeg

RAW_FIXTURE = (Path(__file__).resolve().parents[2] / "datasets" / "tests" / "fixtures"
               / "things_eeg2_raw")

needs_cli = pytest.mark.skipif(not os.environ.get("BRAINRECON_CLI"),
                               reason="the simulated data set is made by the CLI (BRAINRECON_CLI)")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    work = tmp_path_factory.mktemp("eeg")
    subprocess.run([os.environ["BRAINRECON_CLI"], "simulate", "--kind", "eeg", "--out", "sim",
                    "--subjects", "2"], check=True, capture_output=True, cwd=work)
    data = work / "sim"
    record = eeg.embed(data, work / "emb")
    return {"work": work, "data": data, "emb": work / "emb", "record": record}


@needs_cli
def test_embed_fit_evaluate(simulated):
    work, data, emb = simulated["work"], simulated["data"], simulated["emb"]
    record = simulated["record"]
    assert record["model"] == "shapes-blip"
    assert (record["training"], record["test"]) == (288, 32)
    assert record["width"] > 0
    assert (emb / "training.npy").is_file() and (emb / "test.npy").is_file()

    ridge = eeg.fit(data, emb, work / "ridge-1", subject="sub-01", method="ridge")
    assert ridge["already_done"] is False
    assert ridge["meta"]["method"] == "ridge"
    assert ridge["meta"]["trained_on"] == ["sub-01"]
    assert ridge["meta"]["test_subject"] == "sub-01"
    assert (work / "ridge-1" / "decoder.json").is_file()

    nice = eeg.fit(data, emb, work / "nice-loso-1", leave_out="sub-01", epochs=2)
    assert nice["meta"]["method"] == "nice"
    assert nice["meta"]["trained_on"] == ["sub-02"]
    assert nice["meta"]["test_subject"] == "sub-01"
    assert len(nice["meta"]["epoch_losses"]) == 2
    # the same call again finds the fit done
    again = eeg.fit(data, emb, work / "nice-loso-1", leave_out="sub-01", epochs=2)
    assert again["already_done"] is True
    assert again["meta"]["epoch_losses"] == nice["meta"]["epoch_losses"]

    scores = eeg.evaluate(data, [work / "ridge-1", work / "nice-loso-1"],
                          out=work / "scores.json")
    rows = scores["rows"]
    assert [r["method"] for r in rows] == ["ridge", "nice"]
    assert [r["subject"] for r in rows] == ["sub-01", "sub-01"]
    assert [r["trained_on"] for r in rows] == [["sub-01"], ["sub-02"]]
    for r in rows:
        s = r["scores"]
        assert s["n"] == 32
        assert 0.0 <= s["top1"] <= 1.0
        assert s["top1"] <= s["top5"] <= 1.0
        assert [w["k"] for w in s["ways"]] == [2, 4, 10]
        assert r["ms_per_trial"] >= 0.0
    summaries = {(s["method"], s["setting"]): s for s in scores["summaries"]}
    assert set(summaries) == {("ridge", "within"), ("nice", "leave-one-out")}
    for s in summaries.values():
        assert s["n"] == 1
        assert 0.0 <= s["top1"]["mean"] <= 1.0 and s["top1"]["sd"] == 0.0
    assert scores["chance_top1"] == pytest.approx(1 / 32)
    assert json.loads((work / "scores.json").read_text())["rows"][0]["subject"] == "sub-01"

    # k-way scores asked for, and fewer draws
    picked = eeg.evaluate(data, work / "ridge-1", ways=[2, 32], draws=10, seed=3)
    assert [w["k"] for w in picked["rows"][0]["scores"]["ways"]] == [2, 32]

    # reconstructions from the ridge decoder's embeddings, a few images, few steps
    recons = eeg.reconstruct(data, work / "ridge-1", emb, work / "recons", steps=4, limit=3)
    assert recons["images"] == 3 and recons["subject"] == "sub-01"
    assert [s["name"] for s in recons["sets"]] == ["decoded z", "sample 1"]
    for k in range(3):
        assert (work / "recons" / "sample-1" / f"{k}.png").is_file()
    assert (work / "recons" / "comparison.png").is_file()
    assert eeg.reconstruct(data, work / "ridge-1", emb, work / "recons", steps=4,
                           limit=3)["already_done"] is True
    with pytest.raises(ValueError, match="concept"):
        eeg.reconstruct(data, work / "ridge-1", emb, work / "r2", prompt="no template")


@needs_cli
def test_bad_input(simulated, tmp_path):
    data, emb = simulated["data"], simulated["emb"]
    with pytest.raises(ValueError, match="subject"):
        eeg.fit(data, emb, tmp_path / "bad", subject="sub-09", method="ridge")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="exactly one of subject and leave_out"):
        eeg.fit(data, emb, tmp_path / "both", subject="sub-01", leave_out="sub-02")
    with pytest.raises(ValueError, match="exactly one of subject and leave_out"):
        eeg.fit(data, emb, tmp_path / "neither")
    # the native function checks the same
    with pytest.raises(ValueError, match="exactly one of subject and leave_out"):
        _native.eeg_fit(os.fspath(data), os.fspath(emb), os.fspath(tmp_path / "native"))
    with pytest.raises(ValueError, match="window"):
        eeg.fit(data, emb, tmp_path / "w", subject="sub-01", method="ridge", window=(50, 20))
    with pytest.raises(ValueError, match="method"):
        eeg.fit(data, emb, tmp_path / "m", subject="sub-01", method="lda")
    with pytest.raises(FileNotFoundError):
        eeg.evaluate(data, tmp_path / "no-such-decoder")
    with pytest.raises(ValueError, match="mvnn"):
        eeg.preprocess(RAW_FIXTURE, tmp_path / "pre", mvnn="space")


def test_preprocess_raw_recordings(tmp_path):
    out = tmp_path / "pre"
    report = eeg.preprocess(RAW_FIXTURE, out)
    subject = report["subjects"][0]
    assert subject["subject"] == "sub-01"
    assert subject["training"] == [4, 4, 6, 100]
    assert subject["test"] == [2, 6, 6, 100]
    assert subject["ch_names"] == ["P7", "P3", "PO3", "O1", "Oz", "O2"]
    assert report["options"] == {"sfreq": 100.0, "tmin": -0.2, "tmax": 0.8,
                                 "channels": "occipital-parietal", "mvnn": "time"}
    pre = out / "eeg_dataset" / "preprocessed_data" / "sub-01"
    assert (pre / "preprocessed_eeg_training.npy").is_file()
    assert (pre / "preprocessed_eeg_test.npy").is_file()

    # NICE's settings: every channel at 250 Hz
    nice = eeg.preprocess(RAW_FIXTURE, tmp_path / "nice", subjects="sub-01", sfreq=250,
                          channels="all", mvnn="epochs")
    assert nice["subjects"][0]["training"][2:] == [8, 250]
    with pytest.raises(ValueError, match="channels"):
        eeg.preprocess(RAW_FIXTURE, tmp_path / "c", channels="frontal")


def test_exported():
    assert brainrecon.eeg is eeg
    assert "eeg" in brainrecon.__all__
    assert eeg.__all__ == ["preprocess", "bids_prepare", "meg_prepare", "embed", "fit",
                           "evaluate", "reconstruct"]


def test_bids_prepare_reads_ds003825_as_shipped(tmp_path):
    fixture = os.fspath(Path(__file__).resolve().parents[2] / "datasets" / "tests" / "fixtures" / "ds003825")
    report = eeg.bids_prepare(os.path.join(fixture, "ds003825"), "02", "rsvp", tmp_path / "out",
                              images=os.path.join(fixture, "THINGS"))
    assert report["onsets"] == "samples"
    assert report["training"] == [8, 1, 8, 100]
    assert report["test"] == [3, 4, 8, 100]
    assert report["images_linked"] == 11
    with pytest.raises(FileNotFoundError):
        eeg.bids_prepare(os.path.join(fixture, "ds003825"), "05", "rsvp", tmp_path / "x")


def test_meg_prepare_reads_things_meg_split_epochs(tmp_path):
    fif = Path(__file__).resolve().parents[2] / "formats" / "tests" / "fixtures" / "fif"
    pre = tmp_path / "ds004212" / "derivatives" / "preprocessed"
    pre.mkdir(parents=True)
    for part in ["", "-1", "-2"]:
        name = f"preprocessed_P1-epo{part}.fif"
        (pre / name).write_bytes((fif / name).read_bytes())
    report = eeg.meg_prepare(tmp_path / "ds004212", "P1", tmp_path / "out")
    assert report["subject"] == "sub-01" and report["catch"] == 1
    assert report["training"] == [5, 1, 3, 281] and report["test"] == [2, 2, 3, 281]
    assert len(report["files"]) == 3 and report["images_linked"] == 0
    cropped = eeg.meg_prepare(tmp_path / "ds004212", "1", tmp_path / "out2", tmin=0.0, tmax=0.5)
    assert cropped["training"][3] == 101
    with pytest.raises(FileNotFoundError):
        eeg.meg_prepare(tmp_path / "ds004212", "P3", tmp_path / "x")
