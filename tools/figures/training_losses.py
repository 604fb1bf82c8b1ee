"""Loss curves of shapes-ldm from the record that ships with its weights.

    python3 -m venv .venv-figures && .venv-figures/bin/pip install -r tools/figures/requirements.txt
    .venv-figures/bin/python tools/figures/training_losses.py models/shapes-ldm/training.json docs/shapes-ldm-losses.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def smooth(values, window):
    """Running mean over `window` steps (shorter at the start)."""
    values = np.asarray(values, dtype=float)
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values)
    for i in range(len(values)):
        lo = max(0, i + 1 - window)
        out[i] = (cumsum[i + 1] - cumsum[lo]) / (i + 1 - lo)
    return out


def main(record_path, png_path):
    with open(record_path) as f:
        record = json.load(f)
    panels = [
        (
            f"autoencoder: L1 (shape pixels x{1 + record['foreground_weight']:g}) + 1e-6 KL",
            record["vae_losses"],
            record["vae_batch"],
        ),
    ]
    if record.get("decoder_losses"):
        panels.append(
            (
                "decoder alone (encoder frozen): the same L1",
                record["decoder_losses"],
                record["decoder_batch"],
            )
        )
    panels.append(
        (
            "text encoder + U-Net: epsilon MSE"
            + (f", min-SNR-{record['snr_gamma']:g} weights" if "snr_gamma" in record else ""),
            record["unet_losses"],
            record["unet_batch"],
        )
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), dpi=100)
    for ax, (title, losses, batch) in zip(axes, panels):
        steps = np.arange(1, len(losses) + 1)
        ax.plot(steps, losses, color="0.75", linewidth=0.6, label="per step")
        ax.plot(steps, smooth(losses, 50), color="C0", linewidth=1.6, label="mean of 50 steps")
        ax.set_yscale("log")
        ax.set_xlabel(f"step (batch {batch})")
        ax.set_ylabel("loss")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"shapes-ldm training, seed {record['seed']}: "
        f"VAE {record['vae_parameters']:,} parameters, U-Net {record['unet_parameters']:,}, "
        f"text encoder {record['text_encoder_parameters']:,}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(png_path, metadata={"Software": None})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
