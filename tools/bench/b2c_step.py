#!/usr/bin/env python3
"""The same B2C training step in PyTorch, for tools/bench/b2c.sh: the encoder of a trained
brainrecon B2C folder's config (diffusers BasicTransformerBlocks, per-group projections) and the
shapes-ldm U-Net loaded with diffusers from models/shapes-ldm/unet, trained together with AdamW
(diffusion loss + CLIP alignment loss, gradients clipped to norm 1), on random betas, latents
and contexts of the shapes the real run uses.

  python tools/bench/b2c_step.py --config B2C/encoder/config.json --unet models/shapes-ldm/unet \
      --batch 8 --steps 30 --threads 2
Prints one JSON line: seconds per step (median of the timed steps, after 3 warm-up steps) and
the process's peak resident memory in MB (10^6 bytes).
"""

import argparse
import json
import resource
import statistics
import time

import torch
from torch import nn
from diffusers import DDPMScheduler, UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock


class Encoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        d = config["hidden_size"]
        self.groups = [(g["voxels"], g["tokens"]) for g in config["groups"]]
        self.d = d
        self.proj_in = nn.ModuleList([nn.Linear(v, t * d) for v, t in self.groups])
        self.position_embedding = nn.Embedding(sum(t for _, t in self.groups), d)
        self.transformer_blocks = nn.ModuleList(
            [
                BasicTransformerBlock(
                    d, config["num_attention_heads"], d // config["num_attention_heads"],
                    dropout=config["dropout"], cross_attention_dim=None, activation_fn="gelu",
                    attention_bias=True, norm_type="layer_norm", ff_inner_dim=config["intermediate_size"],
                )
                for _ in range(config["num_layers"])
            ]
        )
        self.drop = nn.Dropout(config["dropout"])
        self.norm_out = nn.LayerNorm(d, eps=config["layer_norm_eps"])
        self.proj_out = nn.Linear(d, d)

    def forward(self, betas):
        b, parts, offset = betas.shape[0], [], 0
        for (v, t), proj in zip(self.groups, self.proj_in):
            parts.append(proj(betas[:, offset:offset + v]).reshape(b, t, self.d))
            offset += v
        x = self.drop(torch.cat(parts, 1) + self.position_embedding.weight)
        for block in self.transformer_blocks:
            x = block(x)
        return self.proj_out(self.norm_out(x))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--unet", required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clip-loss", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = json.load(open(args.config))
    encoder = Encoder(config).train()
    unet = UNet2DConditionModel.from_pretrained(args.unet).train()
    params = list(encoder.parameters()) + list(unet.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2)
    schedule = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    voxels = sum(g["voxels"] for g in config["groups"])
    tokens = sum(g["tokens"] for g in config["groups"])
    side = unet.config.sample_size
    b, d = args.batch, config["hidden_size"]
    times = []
    for step in range(args.steps + 3):
        betas = torch.randn(b, voxels)
        latents = torch.randn(b, unet.config.in_channels, side, side)
        true_context = torch.randn(b, tokens, d)
        start = time.perf_counter()
        noise = torch.randn_like(latents)
        t = torch.randint(0, 1000, (b,))
        ctx = encoder(betas)
        pred = unet(schedule.add_noise(latents, noise, t), t, encoder_hidden_states=ctx).sample
        diffusion = ((pred - noise) ** 2).mean()
        mse = ((ctx - true_context) ** 2).flatten(1).mean(1).mean()
        cos = nn.functional.cosine_similarity(ctx.flatten(1), true_context.flatten(1), dim=1).mean()
        loss = diffusion + args.clip_loss * (mse + 1 - cos)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step >= 3:
            times.append(time.perf_counter() - start)
    print(json.dumps({
        "seconds_per_step": statistics.median(times),
        "batch": b, "voxels": voxels, "tokens": tokens, "width": d,
        "torch": torch.__version__, "threads": args.threads,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
    }))


if __name__ == "__main__":
    main()
