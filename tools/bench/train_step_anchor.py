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

import torch
from torch import nn
from diffusers import DDIMScheduler, UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock

TEMPERATURE = 0.1
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

    return unet, 1e-4, inputs, loss


def encoder_workload(like):
    s = like["window"]
    b, t, d = like["batch"], like["tokens"], like["width"]
    encoder = WindowEncoder(s["window"], s["voxels"], s["patch_size"], t, d).train()

    def inputs():
        return torch.randn(b, s["window"] * s["voxels"]), torch.randn(b, t, d)

    def loss(windows, target):
        return encoder_loss(encoder(windows), target)

    return encoder, 1e-3, inputs, loss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--like", required=True, help="the JSON line brainrecon printed")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    like = json.loads(open(args.like).read().strip().splitlines()[-1])
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    build = {"unet": unet_workload, "window-encoder": encoder_workload}[like["workload"]]
    model, lr, inputs, loss_of = build(like)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    times, losses = [], []
    for step in range(like["warmup"] + like["steps"]):
        batch = inputs()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(*batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
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
    }))


if __name__ == "__main__":
    main()
