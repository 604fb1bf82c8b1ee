"""The transformers side of `tools/bench/clap.sh`: CLAP audio embeddings timed per 10-s window
(ClapFeatureExtractor, then ClapModel.get_audio_features) on the windows brainrecon wrote
(windows.npy, mono at the model's rate), on the same number of threads, after one untimed
warm-up window. Prints one JSON line with the timings; the embeddings go to --embeddings-out.

  python tools/bench/clap_anchor.py --clap DIR --windows DIR/windows.npy --threads 2 \
      --embeddings-out DIR/transformers_embeddings.npy [--batch B]
  python tools/bench/clap_anchor.py --make-base DIR   # a random-weight CLAP-HTSAT-unfused folder

--make-base writes a `ClapModel` with the sizes of LAION's `laion/clap-htsat-unfused` (HTSAT with
96-192-384-768 channels over 4 stages of 2, 2, 6, 2 blocks, windows of 8 on a 256 x 256 folded
spectrogram; RoBERTa-base text tower; 512-d joint space), its weights drawn by transformers'
initialisation under torch.manual_seed(0), saved with `save_pretrained` (config.json,
model.safetensors), and that checkpoint's `preprocessor_config.json` (48 kHz, 64 mels 50-14000 Hz,
fft 1024, hop 480, 10 s, `rand_trunc`, `repeatpad`). No tokenizer: the benchmark embeds audio only.
Pinned versions: tools/fixtures/requirements-clap.txt.
"""
import argparse
import json
import time

import numpy as np
import torch
import transformers
from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

# laion/clap-htsat-unfused's config.json (the fields that set sizes and arithmetic)
TEXT_CONFIG = dict(
    vocab_size=50265,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu",
    max_position_embeddings=514,
    type_vocab_size=1,
    layer_norm_eps=1e-12,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
    projection_dim=512,
    projection_hidden_act="relu",
)
AUDIO_CONFIG = dict(
    window_size=8,
    num_mel_bins=64,
    spec_size=256,
    hidden_act="gelu",
    patch_size=4,
    patch_stride=[4, 4],
    num_classes=527,
    hidden_size=768,
    projection_dim=512,
    depths=[2, 2, 6, 2],
    num_attention_heads=[4, 8, 16, 32],
    enable_fusion=False,
    fusion_type=None,
    patch_embed_input_channels=1,
    flatten_patch_embeds=True,
    patch_embeds_hidden_size=96,
    enable_patch_layer_norm=True,
    drop_path_rate=0.0,
    qkv_bias=True,
    mlp_ratio=4.0,
    aff_block_r=4,
    num_hidden_layers=4,
    projection_hidden_act="relu",
    layer_norm_eps=1e-5,
)
# laion/clap-htsat-unfused's preprocessor_config.json
PREPROCESSOR = dict(
    feature_size=64,
    sampling_rate=48000,
    hop_length=480,
    max_length_s=10,
    fft_window_size=1024,
    frequency_min=50,
    frequency_max=14000,
    truncation="rand_trunc",
    padding="repeatpad",
)


def make_base(out):
    torch.manual_seed(0)
    config = ClapConfig(
        text_config=TEXT_CONFIG,
        audio_config=AUDIO_CONFIG,
        projection_dim=512,
        projection_hidden_act="relu",
        logit_scale_init_value=1 / 0.07,
    )
    model = ClapModel(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    ClapFeatureExtractor(**PREPROCESSOR).save_pretrained(out)


def embed(model, extractor, windows):
    """Unit embeddings [B, P] of a batch of windows and the seconds of (front end, tower)."""
    started = time.perf_counter()
    features = extractor(list(windows), sampling_rate=extractor.sampling_rate, return_tensors="pt")
    input_features = features["input_features"].float()
    front_end = time.perf_counter() - started
    started = time.perf_counter()
    out = model.get_audio_features(input_features=input_features, is_longer=features["is_longer"])
    embeds = out if isinstance(out, torch.Tensor) else out.pooler_output
    return embeds, front_end, time.perf_counter() - started


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clap")
    ap.add_argument("--windows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--embeddings-out")
    ap.add_argument("--make-base")
    args = ap.parse_args()
    if args.make_base:
        make_base(args.make_base)
        return
    if not (args.clap and args.windows and args.embeddings_out):
        ap.error("--clap, --windows and --embeddings-out are needed (or --make-base DIR)")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = ClapModel.from_pretrained(args.clap, dtype=torch.float32).eval()
    extractor = ClapFeatureExtractor.from_pretrained(args.clap)
    load = time.perf_counter() - started
    windows = np.load(args.windows)
    if windows.ndim != 2:
        raise SystemExit(f"{args.windows}: expected [windows, samples], found shape {windows.shape}")
    n = windows.shape[0]
    parts, front_end, tower = [], 0.0, 0.0
    with torch.inference_mode():
        embed(model, extractor, windows[:1])  # warm-up
        for start in range(0, n, args.batch):
            embeds, f, t = embed(model, extractor, windows[start : start + args.batch])
            parts.append(embeds)
            front_end += f
            tower += t
    np.save(args.embeddings_out, torch.cat(parts).numpy().astype(np.float32))
    print(json.dumps({"transformers": transformers.__version__, "torch": torch.__version__,
                      "threads": args.threads, "batch": args.batch, "windows": n,
                      "seconds_load": load, "seconds_per_window": (front_end + tower) / n,
                      "front_end_seconds": front_end / n, "model_seconds": tower / n}))


if __name__ == "__main__":
    main()
