#!/usr/bin/env python3
"""diffusers side of crates/diffusion/examples/bench_unet_motion.rs: one UNetMotionModel step
(SD 1.5 U-Net with the v1.5 motion adapter's modules: diffusers' MotionAdapter defaults) on one
clip of 16 frames at 256 px (sample [1, 4, 16, 32, 32], encoder_hidden_states [16, 77, 768],
timestep 981), random weights (diffusers' default init; no download), float32, CPU, torch
threads fixed (default 2), under torch.inference_mode.

    python tools/bench/unet_motion_diffusers.py [--frames 16] [--latent 32] [--steps 1] [--threads 2] [--json] [--image-only]

--image-only times UNet2DConditionModel on the same frames as a batch of images.

Pins: tools/fixtures/requirements-unet-motion.txt.
"""
import argparse
import json
import resource
import time

import diffusers
import torch
from diffusers import UNet2DConditionModel, UNetMotionModel

SD15_MOTION = dict(
    block_out_channels=(320, 640, 1280, 1280),
    cross_attention_dim=768,
    down_block_types=("CrossAttnDownBlockMotion",) * 3 + ("DownBlockMotion",),
    up_block_types=("UpBlockMotion",) + ("CrossAttnUpBlockMotion",) * 3,
    layers_per_block=2,
    norm_num_groups=32,
    num_attention_heads=8,
    sample_size=64,
    motion_num_attention_heads=8,
    motion_max_seq_length=32,
    use_motion_mid_block=True,
)


SD15_UNET = dict(
    block_out_channels=(320, 640, 1280, 1280),
    cross_attention_dim=768,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    layers_per_block=2,
    norm_num_groups=32,
    attention_head_dim=8,
    sample_size=64,
)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--latent", type=int, default=32)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    p.add_argument("--image-only", action="store_true", help="UNet2DConditionModel on the frames as images")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    if a.image_only:
        model = UNet2DConditionModel(**SD15_UNET).eval()
    else:
        model = UNetMotionModel(**SD15_MOTION).eval()
    build_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(1)
    sample = torch.randn((1, 4, a.frames, a.latent, a.latent), generator=g)
    context = torch.randn((1, 77, 768), generator=g).repeat_interleave(a.frames, dim=0)
    steps = []
    with torch.inference_mode():
        for _ in range(a.steps):
            t = time.perf_counter()
            x = sample.permute(0, 2, 1, 3, 4).reshape(-1, 4, a.latent, a.latent) if a.image_only else sample
            out = model(x, 981, encoder_hidden_states=context).sample
            steps.append(time.perf_counter() - t)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024)
    row = dict(
        impl=f"diffusers {diffusers.__version__} (torch {torch.__version__})",
        bench="unet_per_frame" if a.image_only else "unet_motion",
        frames=a.frames,
        latent=a.latent,
        dtype="f32",
        threads=str(a.threads),
        build_s=round(build_s, 3),
        step_s=[round(s, 3) for s in steps],
        peak_rss_gib=round(rss, 3),
        output_shape=list(out.shape),
    )
    print(json.dumps(row) if a.json else row)


if __name__ == "__main__":
    main()
