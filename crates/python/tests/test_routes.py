"""The routes from Python on a small simulated subject: prepare → features → fit → reconstruct
(linear and caption) → PIL images, with the CLI's files and errors."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import brainrecon

ROOT = Path(__file__).resolve().parents[3]
# The diffusion crate's tiny test model (32 px, VAE factor 2): seconds per route on a CPU.
TINY_SD = ROOT / "crates/diffusion/tests/fixtures/tiny-sd"


@pytest.fixture(scope="module")
def route(tmp_path_factory):
    """A prepared subject with its z and c features and decoders (as crates/cli/tests'
    linear route: 150 images, seed 3, 32 px)."""
    work = tmp_path_factory.mktemp("route")
    nsd_root = brainrecon.nsd.simulate(work / "nsd", n_images=150, seed=3, layout="nsd",
                                       image_size=32)
    subject = brainrecon.prepare_subject(nsd_root, "subj01", work / "subj01")
    vae = brainrecon.compute_features(subject, "vae", model=TINY_SD)
    text = brainrecon.compute_features(subject.path, "clip-text", model=TINY_SD)
    decoders = work / "decoders"
    fits = brainrecon.fit_decoders(subject, ["z", "c"], decoders)
    return {"work": work, "subject": subject, "vae": vae, "text": text, "fits": fits,
            "decoders": decoders}


def test_prepare_features_and_fit(route):
    subject = route["subject"]
    assert isinstance(subject, brainrecon.Subject)
    assert subject.meta["subject"] == "subj01" and subject.meta["n_test_images"] >= 10
    [vae], [text] = route["vae"], route["text"]
    # tiny-sd: 20 px images (5/8 of 32) → 4×10×10 latents; CLIP context 77×32
    assert vae["shape"] == [4, 10, 10] and vae["computed"] == vae["n_images"]
    assert text["shape"] == [77, 32]
    features = np.load(vae["array"], mmap_mode="r")
    assert features.shape == (vae["n_images"], 400)
    again = brainrecon.compute_features(subject, "vae", model=TINY_SD)
    assert again[0]["computed"] == 0 and again[0]["cached"] == vae["n_images"]
    z, c = route["fits"]["z"], route["fits"]["c"]
    assert z["roi"] == "streams/early" and z["n_targets"] == 400
    assert c["roi"] == "streams/ventral" and c["target_shape"] == [77, 32]
    assert (route["decoders"] / "z" / "model.json").is_file()


def test_linear_reconstruction_as_pil_images(route, tmp_path):
    settings = dict(model=TINY_SD, samples=2, steps=3, limit=2)
    recons = brainrecon.reconstruct(route["subject"], route["decoders"], out=tmp_path / "r",
                                    **settings)
    assert len(recons) == 2 and recons.summary["written"] == 6
    test_ids = route["subject"].stimulus_ids("test")[:2].tolist()
    assert recons.ids == test_ids
    for stimulus_id, images in recons:
        assert len(images) == 2
        assert all(im.size == (32, 32) and im.mode == "RGB" for im in images)
    assert all(im.size == (20, 20) for im in recons.decoded_z)
    arrays = recons.arrays()
    assert arrays.shape == (2, 2, 32, 32, 3) and arrays.dtype == np.uint8
    # the files are the CLI's: the images in memory are those on disk
    from PIL import Image
    first = np.asarray(Image.open(tmp_path / "r" / "sample-1" / f"{test_ids[0]}.png"))
    np.testing.assert_array_equal(first, arrays[0, 0])
    # the same settings in a temporary folder make the same images
    again = brainrecon.reconstruct(route["subject"], route["decoders"], **settings)
    assert again.out is None
    np.testing.assert_array_equal(again.arrays(), arrays)
    cli = os.environ.get("BRAINRECON_CLI")
    if cli:
        # the binary writes the same bytes for the same flags
        out = tmp_path / "cli"
        subprocess.run([cli, "reconstruct", "--subject", str(route["subject"].path),
                        "--decoders", str(route["decoders"]), "--model", str(TINY_SD),
                        "--out", str(out), "--samples", "2", "--steps", "3", "--limit", "2"],
                       check=True, capture_output=True)
        for folder in ("decoded-z", "sample-1", "sample-2"):
            for i in test_ids:
                name = f"{folder}/{i}.png"
                assert (out / name).read_bytes() == (tmp_path / "r" / name).read_bytes(), name


def test_caption_route(route, tmp_path):
    subject = route["subject"]
    brainrecon.compute_features(subject, "blip-vision")
    captions = brainrecon.caption(subject, tmp_path / "captions", source="features", limit=2)
    assert [item["id"] for item in captions["items"]] == subject.stimulus_ids("test")[:2].tolist()
    assert all(item["caption"] for item in captions["items"])
    recons = brainrecon.reconstruct(subject, route["decoders"], method="caption",
                                    captions=tmp_path / "captions", model=TINY_SD, samples=1,
                                    steps=2, limit=2)
    assert recons.manifest["options"]["method"] == "caption"
    assert [len(images) for images in recons.images] == [1, 1]
    assert recons.images[0][0].size == (32, 32)


def test_bad_input_names_the_file_and_field(route, tmp_path):
    subject = route["subject"]
    with pytest.raises(FileNotFoundError, match="subject.json"):
        brainrecon.reconstruct(tmp_path / "nothing", route["decoders"], model=TINY_SD)
    with pytest.raises(ValueError, match="expected linear, z-only, c-only, b2c or caption"):
        brainrecon.reconstruct(subject, route["decoders"], method="nearest", model=TINY_SD)
    with pytest.raises(ValueError, match="captions"):
        brainrecon.reconstruct(subject, route["decoders"], method="caption", model=TINY_SD)
    with pytest.raises((ValueError, FileNotFoundError), match="vae.npy"):
        brainrecon.fit_decoders(subject, "z", tmp_path / "z", features=tmp_path / "none")
    with pytest.raises(ValueError, match="cv: expected loo, gcv"):
        brainrecon.fit_decoders(subject, "z", tmp_path / "z", cv="one")
    with pytest.raises(ValueError, match="vae, clip-text"):
        brainrecon.compute_features(subject, "pixels")


@pytest.mark.skipif(not os.environ.get("BRAINRECON_CLI"),
                    reason="the synthetic movie's run set is made by the CLI (BRAINRECON_CLI)")
def test_encode_runs_returns_the_clis_maps(tmp_path):
    cli = os.environ["BRAINRECON_CLI"]

    def run(*args):
        subprocess.run([cli, *args], check=True, capture_output=True, cwd=tmp_path)

    run("simulate", "--kind", "movie", "--out", "sim-movie")
    run("bids", "prepare", "--bids-root", "sim-movie", "--subject", "01", "--task", "movie",
        "--mask", "sim-movie/derivatives/mask/sub-01_mask.nii.gz", "--out", "runs")
    flags = ["--bands", "speech,objects", "--permutations", "50", "--n-iter", "5", "--unique"]
    run("encode-runs", "--subject", "runs", "--out", "enc-cli", *flags)
    maps = brainrecon.encode_runs(tmp_path / "runs", ["speech", "objects"], tmp_path / "enc",
                                  permutations=50, n_iter=5, unique=True)
    voxels = maps["summary"]["voxels"]
    assert [b["name"] for b in maps["summary"]["bands"]] == ["speech", "objects"]
    assert maps["r"].shape == (voxels,) and maps["r2_split"].shape == (2, voxels)
    assert maps["unique"].shape == (2, voxels)
    for name in ("r", "r2", "p", "q", "r2_split", "unique"):
        np.testing.assert_array_equal(maps[name], np.load(tmp_path / "enc-cli" / f"{name}.npy"))
    with pytest.raises(ValueError, match="band"):
        brainrecon.encode_runs(tmp_path / "runs", ["=x"], tmp_path / "bad")


def test_train_word2vec_equals_the_cli(tmp_path):
    # The same corpus, settings and seed give the CLI's bytes; the vectors hold every word of
    # ds005531's annotations as the route splits them.
    cli = os.environ["BRAINRECON_CLI"]
    corpus = ROOT / "crates/cli/tests/fixtures/ds005531_shipped/derivatives/annotation"
    subprocess.run([cli, "train-word2vec", "--corpus", str(corpus), "--min-count", "1",
                    "--dim", "8", "--epochs", "1", "--seed", "2", "--out", str(tmp_path / "cli")],
                   check=True, capture_output=True)
    summary = brainrecon.train_word2vec(corpus, tmp_path / "py", min_count=1, dim=8, epochs=1,
                                        seed=2)
    assert summary["dim"] == 8 and len(summary["files"]) == 12
    assert summary["corpus_words_in_vocabulary"] == summary["corpus_words"]
    assert (tmp_path / "py/vectors.bin").read_bytes() == (tmp_path / "cli/vectors.bin").read_bytes()
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        brainrecon.train_word2vec(tmp_path / "missing.txt", tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_live_session_refuses_bad_options(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        brainrecon.realtime.Session(tmp_path / "no-export", tmp_path, tmp_path, tr=1.0)
    with pytest.raises(ValueError, match="--tr: expected a positive number of seconds"):
        brainrecon.realtime.Session(tmp_path, tmp_path, tmp_path, tr=0.0)
    with pytest.raises(FileNotFoundError, match="subject.json"):
        brainrecon.realtime.Session(tmp_path, tmp_path / "subject", tmp_path, tr=1.0)
