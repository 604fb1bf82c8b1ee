#!/usr/bin/env python3
"""The training step of `brainrecon bench train-step` in PyTorch, for tools/bench/train_step.sh:
reads the JSON line brainrecon printed (--like) and times the same workload, batch, steps and
warm-up on the same shapes.

  unet            diffusers' UNet2DConditionModel.from_pretrained(<pipeline>/unet), every
                  parameter trained: random latents, noise, timesteps and contexts [B, T, D],
                  epsilon-prediction MSE, backward, clip_grad_norm_(1.0), AdamW (lr 1e-4)
  window-encoder  the video route's fMRI window encoder (the module of
                  tools/fixtures/window_encoder.py with the demo's sizes and dropout 0.1):
                  random windows and target contexts, contrastive loss (temperature 0.1) plus
                  the alignment term, backward, clip_grad_norm_(1.0), AdamW (lr 1e-3)
  eeg-encoder     NICE's EEG encoder (the modules of tools/fixtures/eeg_nice.py, as NICE's code
                  defines them) at THINGS-EEG2's size, dropout 0.5: random trials [B, 63, 250]
                  and image embeddings [B, 768], NICE's contrastive loss, backward, Adam
                  (lr 2e-4, betas 0.5/0.999, as NICE; no clipping)

Each step's inputs are drawn before its timer starts.

  python tools/bench/train_step_anchor.py --like brainrecon.json --threads 2
Prints one JSON line: seconds per step (min and median of the timed steps), peak RSS (MB).
"""

import argparse
import json
import os
import resource
import statistics
import time

import sys

import torch
from torch import nn
from diffusers import DDIMScheduler, UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
import eeg_nice  # noqa: E402

TEMPERATURE = 0.1
FOLD_POOL = False
ALIGN_WEIGHT = 1.0


class WindowEncoder(nn.Module):
    """brainrecon's FmriWindowEncoder (crates/brain/src/window.rs), as the golden fixture
    builds it, with dropout after the embeddings and inside the blocks."""

    def __init__(self, k, v, p, t, d, layers=2, dropout=0.1):
        super().__init__()
        heads = max(d // 64, 1)
        self.k, self.v, self.p, self.d = k, v, p, d
        self.n = -(-v // p)

        def block():
            return BasicTransformerBlock(
                d, heads, d // heads, dropout=dropout, cross_attention_dim=None,
                activation_fn="gelu", attention_bias=True, norm_type="layer_norm",
                ff_inner_dim=4 * d,
            )

        self.patch_embed = nn.Linear(p, d)
        self.position_embedding = nn.Embedding(self.n, d)
        self.frame_embedding = nn.Embedding(k, d)
        self.drop = nn.Dropout(dropout)
        self.spatial_blocks = nn.ModuleList([block() for _ in range(layers)])
        self.temporal_blocks = nn.ModuleList([block() for _ in range(layers)])
        self.token_map = nn.Linear(self.n, t)
        self.norm_out = nn.LayerNorm(d, eps=1e-5)
        self.proj_out = nn.Linear(d, d)

    def forward(self, windows):
        b, k, n, d = windows.shape[0], self.k, self.n, self.d
        patches = nn.functional.pad(windows.reshape(b, k, self.v), (0, n * self.p - self.v))
        x = self.patch_embed(patches.reshape(b, k, n, self.p))
        x = x + self.position_embedding.weight[None, None] + self.frame_embedding.weight[None, :, None]
        x = self.drop(x)
        for spatial, temporal in zip(self.spatial_blocks, self.temporal_blocks):
            x = spatial(x.reshape(b * k, n, d)).reshape(b, k, n, d)
            x = temporal(x.transpose(1, 2).reshape(b * n, k, d)).reshape(b, n, k, d).transpose(1, 2)
        tokens = self.token_map(x.mean(1).transpose(1, 2)).transpose(1, 2)
        return self.proj_out(self.norm_out(tokens))


def encoder_loss(ctx, target):
    p = nn.functional.normalize(ctx.flatten(1), dim=1)
    q = nn.functional.normalize(target.flatten(1), dim=1)
    logits = p @ q.T / TEMPERATURE
    labels = torch.arange(ctx.shape[0])
    contrastive = 0.5 * (nn.functional.cross_entropy(logits, labels)
                         + nn.functional.cross_entropy(logits.T, labels))
    mse = ((ctx - target) ** 2).flatten(1).mean(1).mean()
    cos = nn.functional.cosine_similarity(ctx.flatten(1), target.flatten(1), dim=1, eps=1e-8).mean()
    return contrastive + ALIGN_WEIGHT * (mse + (1.0 - cos))


def unet_workload(like):
    folder = like["pipeline"]
    unet = UNet2DConditionModel.from_pretrained(os.path.join(folder, "unet")).train()
    schedule = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
    b, (c, h, w), t, d = like["batch"], like["latent"], like["tokens"], like["width"]

    def inputs():
        latents, noise = torch.randn(b, c, h, w), torch.randn(b, c, h, w)
        steps = torch.randint(0, schedule.config.num_train_timesteps, (b,))
        return schedule.add_noise(latents, noise, steps), steps, torch.randn(b, t, d), noise

    def loss(noisy, steps, context, noise):
        pred = unet(noisy, steps, encoder_hidden_states=context).sample
        return ((pred - noise) ** 2).mean()

    return unet, adamw(1e-4), 1.0, inputs, loss


def encoder_workload(like):
    s = like["window"]
    b, t, d = like["batch"], like["tokens"], like["width"]
    encoder = WindowEncoder(s["window"], s["voxels"], s["patch_size"], t, d).train()

    def inputs():
        return torch.randn(b, s["window"] * s["voxels"]), torch.randn(b, t, d)

    def loss(windows, target):
        return encoder_loss(encoder(windows), target)

    return encoder, adamw(1e-3), 1.0, inputs, loss


def eeg_workload(like):
    channels, times = like["eeg_trial"]
    b, d = like["batch"], like["width"]
    config = dict(eeg_nice.CONFIG, channels=channels, times=times, filters=40, temporal_kernel=25,
                  pool_kernel=51, pool_stride=5, emb_size=40, proj_dim=d, dropout=0.5, drop_proj=0.5)
    encoder = eeg_nice.Encoder(config).train()
    if FOLD_POOL:
        fold_pool(encoder, config)

    def inputs():
        return torch.randn(b, channels, times), torch.randn(b, d)

    def loss(eeg, image):
        return eeg_nice.loss_of(encoder(eeg), image, encoder.logit_scale)

    adam = lambda params: torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))
    return encoder, adam, None, inputs, loss


def fold_pool(encoder, c):
    """The same function as brainrecon computes it: the temporal convolution and the average
    pool after it become one convolution (the kernel convolved with a box of P taps, at the
    pool's stride), so that the ratio can be split into the folding and the rest."""
    tsconv = encoder.enc_eeg[0].tsconv
    conv = tsconv[0]
    k, p, s = c["temporal_kernel"], c["pool_kernel"], c["pool_stride"]
    box = torch.zeros(k, k + p - 1)
    for row in range(k):
        box[row, row:row + p] = 1.0 / p

    class Folded(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv  # the same parameters, still trained
            self.register_buffer("box", box)

        def forward(self, x):
            w = (self.conv.weight.reshape(-1, k) @ self.box).reshape(-1, 1, 1, k + p - 1)
            return nn.functional.conv2d(x, w, self.conv.bias, stride=(1, s))

    tsconv[0], tsconv[1] = Folded(), nn.Identity()


def adamw(lr):
    return lambda params: torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--like", required=True, help="the JSON line brainrecon printed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fold-pool", action="store_true",
                        help="eeg-encoder: fold the average pool into the temporal convolution, "
                             "as brainrecon does")
    args = parser.parse_args()
    global FOLD_POOL
    FOLD_POOL = args.fold_pool
    like = json.loads(open(args.like).read().strip().splitlines()[-1])
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    build = {"unet": unet_workload, "window-encoder": encoder_workload,
             "eeg-encoder": eeg_workload}[like["workload"]]
    model, make_optimizer, clip, inputs, loss_of = build(like)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params)
    times, losses = [], []
    for step in range(like["warmup"] + like["steps"]):
        batch = inputs()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(*batch)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        losses.append(loss.item())
        if step >= like["warmup"]:
            times.append(time.perf_counter() - start)
    print(json.dumps({
        "side": "pytorch",
        "workload": like["workload"],
        "batch": like["batch"],
        "steps": like["steps"],
        "warmup": like["warmup"],
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in params),
        "seconds_min": min(times),
        "seconds_median": statistics.median(times),
        "seconds": times,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        # ru_maxrss is in KiB on Linux
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
        "torch": torch.__version__,
        "fold_pool": FOLD_POOL,
    }))


if __name__ == "__main__":
    main()
