#!/usr/bin/env python3
"""Test of tools/convert_blip.py on the tiny fixture model (no real checkpoint is needed).

Run from the repository root with torch, safetensors and transformers (the fixtures'
environment, tools/fixtures/requirements-blip.txt):

    venvs/blip5/bin/python tools/test_convert_blip.py

It writes the tiny model's tensors under Salesforce BLIP's names into a `.pth` (plus tensors a
pretraining checkpoint carries and the captioner does not use), converts it back, and checks:
every tensor comes back under its transformers name, bit for bit; nothing else is kept; the
config's dimensions are the tiny model's; transformers loads the result and computes the same
logits as the fixture model; and `--image-size 36` resizes the position table exactly as the
fixture's `vision36.position_embedding` (torch's bicubic, as Salesforce's
`interpolate_pos_embed`).
"""

import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "crates", "language", "tests", "fixtures", "blip")
CONVERT = os.path.join(ROOT, "tools", "convert_blip.py")


def salesforce_name(name):
    """The tiny model's transformers names written the way Salesforce's code names them
    (spelled out here independently of the converter's table)."""
    v = "vision_model."
    if name.startswith("text_decoder."):
        return name
    fixed = {
        v + "embeddings.class_embedding": "visual_encoder.cls_token",
        v + "embeddings.position_embedding": "visual_encoder.pos_embed",
        v + "embeddings.patch_embedding.weight": "visual_encoder.patch_embed.proj.weight",
        v + "embeddings.patch_embedding.bias": "visual_encoder.patch_embed.proj.bias",
        v + "post_layernorm.weight": "visual_encoder.norm.weight",
        v + "post_layernorm.bias": "visual_encoder.norm.bias",
    }
    if name in fixed:
        return fixed[name]
    parts = name.split(".")  # vision_model encoder layers N module [sub] leaf
    assert parts[:3] == ["vision_model", "encoder", "layers"], name
    n, rest = parts[3], ".".join(parts[4:])
    for hf, sf in [
        ("layer_norm1.", "norm1."),
        ("layer_norm2.", "norm2."),
        ("self_attn.qkv.", "attn.qkv."),
        ("self_attn.projection.", "attn.proj."),
        ("mlp.fc1.", "mlp.fc1."),
        ("mlp.fc2.", "mlp.fc2."),
    ]:
        if rest.startswith(hf):
            return f"visual_encoder.blocks.{n}.{sf}{rest[len(hf):]}"
    raise AssertionError(f"unmapped {name}")


def run(*args):
    subprocess.run([sys.executable, CONVERT, *args], check=True, stdout=subprocess.DEVNULL)


def main():
    tiny = load_file(os.path.join(FIXTURES, "tiny", "model.safetensors"))
    words = tiny["text_decoder.bert.embeddings.word_embeddings.weight"]
    state = {salesforce_name(k): v.clone() for k, v in tiny.items()}
    # what a Salesforce checkpoint also holds: the tied head copies, buffers, other heads
    state["text_decoder.cls.predictions.decoder.weight"] = words.clone()
    state["text_decoder.cls.predictions.decoder.bias"] = tiny["text_decoder.cls.predictions.bias"].clone()
    state["text_decoder.bert.embeddings.position_ids"] = torch.arange(64)[None]
    state["visual_encoder_m.pos_embed"] = torch.zeros(1, 26, 32)
    state["text_encoder.bert.embeddings.word_embeddings.weight"] = torch.zeros(136, 32)
    state["vision_proj.weight"] = torch.zeros(16, 32)
    state["image_queue"] = torch.zeros(16, 8)

    with tempfile.TemporaryDirectory() as tmp:
        pth = os.path.join(tmp, "model_tiny.pth")
        torch.save({"model": state, "epoch": 3}, pth)

        out = os.path.join(tmp, "converted")
        run(pth, out, "--vision-layer-norm-eps", "1e-5", "--vision-heads", "4", "--text-heads", "4")
        got = load_file(os.path.join(out, "model.safetensors"))
        assert set(got) == set(tiny), sorted(set(got) ^ set(tiny))
        for k, v in tiny.items():
            assert torch.equal(got[k], v), k
        config = json.load(open(os.path.join(out, "config.json")))
        want = json.load(open(os.path.join(FIXTURES, "tiny", "config.json")))
        for section in ["vision_config", "text_config"]:
            for key, value in config[section].items():
                if key in want[section]:
                    assert want[section][key] == value, (section, key, value, want[section][key])

        # transformers reads the converted folder and computes the fixture model's logits
        from transformers import BlipForConditionalGeneration

        forward = load_file(os.path.join(FIXTURES, "forward.safetensors"))
        model = BlipForConditionalGeneration.from_pretrained(out).eval()
        with torch.no_grad():
            logits = model(
                pixel_values=forward["vision.pixel_values"], input_ids=forward["text.input_ids"]
            ).logits
        assert torch.allclose(logits, forward["text.logits"], rtol=0, atol=1e-5), (
            (logits - forward["text.logits"]).abs().max()
        )

        # Salesforce's load-time interpolation, done at conversion
        out36 = os.path.join(tmp, "converted36")
        run(pth, out36, "--image-size", "36", "--vision-heads", "4", "--text-heads", "4")
        got36 = load_file(os.path.join(out36, "model.safetensors"))
        table = got36["vision_model.embeddings.position_embedding"]
        assert torch.equal(table, forward["vision36.position_embedding"]), (
            (table - forward["vision36.position_embedding"]).abs().max()
        )
        config36 = json.load(open(os.path.join(out36, "config.json")))
        assert config36["vision_config"]["image_size"] == 36
        assert config36["vision_config"]["layer_norm_eps"] == 1e-6

        # a file that is not a BLIP checkpoint is refused with its name
        bad = os.path.join(tmp, "other.pth")
        torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, bad)
        r = subprocess.run([sys.executable, CONVERT, bad, os.path.join(tmp, "x")], capture_output=True, text=True)
        assert r.returncode != 0 and "other.pth" in r.stderr, r.stderr
    print("convert_blip: ok")


if __name__ == "__main__":
    main()
