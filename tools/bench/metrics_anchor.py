#!/usr/bin/env python3
"""Python side of the metric-suite benchmark (tools/bench/metrics.sh): MindEye2's evaluation
(src/final_evaluations.ipynb) on the same PNGs and the same network weights as `brainrecon eval`.

    python tools/bench/metrics_anchor.py setup DIR [--images 32]   # images, weights, CLIP folder
    python tools/bench/metrics_anchor.py run DIR [--threads 2]      # the eight metrics, timed

`setup` writes DIR/stimuli/<id>.png (256 px) and DIR/recons/<id>.png (512 px: a blurred, shifted,
noisier copy), torchvision's AlexNet, InceptionV3, EfficientNet-B1 and ResNet-50 with the golden
tests' deterministic weights (tools/fixtures/metric_networks.py; torchvision's own random
initialisation leaves EfficientNet's features at 1e-14, too small to compare) as safetensors under
DIR/weights (the names `brainrecon eval --metric-weights` reads), and a random CLIP ViT-L/14
vision tower (seed 0) under DIR/clip
(transformers' `CLIPVisionModelWithProjection.save_pretrained`). `run` computes the metrics as the
notebook does (torchvision 0.16's tensor Resize had no antialiasing: `antialias=False` here;
SSIM as scikit-image >= 0.20 computes the notebook's call), with the transformers CLIP model in
place of the `clip` package's, and prints one JSON line: seconds and the eight values.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import scipy.spatial.distance
import torch
import torchvision
from PIL import Image, ImageFilter
from safetensors.torch import save_file
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity
from torchvision import transforms
from torchvision.models.feature_extraction import create_feature_extractor

IMAGENET = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
CLIP = transforms.Normalize([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])


def resize(size):
    return transforms.Resize(size, interpolation=transforms.InterpolationMode.BILINEAR, antialias=False)


def setup(args):
    rng = np.random.default_rng(0)
    for sub in ("stimuli", "recons", "weights"):
        os.makedirs(os.path.join(args.dir, sub), exist_ok=True)
    for i in range(args.images):
        y, x = np.mgrid[0:256, 0:256] / 256.0
        phase = rng.uniform(0, 6, size=3)
        img = np.stack([0.5 + 0.4 * np.sin((c + 1) * 6 * x + 4 * y + phase[c]) for c in range(3)], -1)
        img[rng.integers(0, 128):, rng.integers(0, 128):, rng.integers(0, 3)] *= 0.5
        stim = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
        stim.save(os.path.join(args.dir, "stimuli", f"{i}.png"))
        # a blurred, noisy copy, half mixed with another picture: identification is not trivial
        other = np.roll(img, rng.integers(32, 224), axis=1)[:, ::-1]
        mixed = Image.fromarray((np.clip(0.5 * img + 0.5 * other, 0, 1) * 255).astype(np.uint8))
        recon = mixed.resize((512, 512), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(8))
        noisy = np.asarray(recon, dtype=np.float64) + rng.normal(0, 60, size=(512, 512, 3))
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(os.path.join(args.dir, "recons", f"{i}.png"))
    torch.manual_seed(0)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
    from metric_networks import set_deterministic
    m = torchvision.models
    nets = {"alexnet": m.alexnet(), "inception_v3": m.inception_v3(aux_logits=False, init_weights=False),
            "efficientnet_b1": m.efficientnet_b1(), "swav_resnet50": m.resnet50()}
    nets = {k: set_deterministic(v) for k, v in nets.items()}
    for name, net in nets.items():
        state = {k: v.float().contiguous() for k, v in net.state_dict().items() if v.dtype.is_floating_point}
        save_file(state, os.path.join(args.dir, "weights", f"{name}.safetensors"))
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    config = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                              num_attention_heads=16, image_size=224, patch_size=14, projection_dim=768,
                              hidden_act="quick_gelu")
    CLIPVisionModelWithProjection(config).save_pretrained(os.path.join(args.dir, "clip"))
    print(json.dumps({"setup": args.dir, "images": args.images}))


def load_images(folder):
    ids = sorted(int(f[:-4]) for f in os.listdir(folder) if f.endswith(".png"))
    return torch.stack([transforms.functional.to_tensor(Image.open(os.path.join(folder, f"{i}.png")).convert("RGB"))
                        for i in ids])


def two_way(reals, preds):
    n = len(reals)
    r = np.corrcoef(reals, preds)[:n, n:]
    return float(np.mean(np.sum(r < np.diag(r), 0)) / (n - 1))


def features(model, node, images, preprocess, batch=16):
    out = []
    with torch.no_grad():
        for k in range(0, len(images), batch):
            x = preprocess(images[k:k + batch])
            f = model(x)
            f = f[node] if node is not None else f
            out.append(f.float().flatten(1))
    return torch.cat(out).numpy()


def run(args):
    torch.set_num_threads(args.threads)
    from safetensors.torch import load_file
    from transformers import CLIPVisionModelWithProjection
    start = time.perf_counter()
    base = resize((256, 256))
    images, recons = base(load_images(os.path.join(args.dir, "stimuli"))), base(load_images(os.path.join(args.dir, "recons")))
    n = len(images)
    values = {}
    flat = lambda t: resize(425)(t).reshape(n, -1).numpy()  # noqa: E731
    gi, gr = flat(images), flat(recons)
    values["PixCorr"] = float(np.mean([np.corrcoef(gi[i], gr[i])[0, 1] for i in range(n)]))
    gray = lambda t: rgb2gray(resize(425)(t).permute(0, 2, 3, 1).numpy())  # noqa: E731
    gi, gr = gray(images), gray(recons)
    values["SSIM"] = float(np.mean([structural_similarity(gr[i], gi[i], gaussian_weights=True, sigma=1.5,
                                                          use_sample_covariance=False, data_range=1.0)
                                    for i in range(n)]))
    weights = os.path.join(args.dir, "weights")
    m = torchvision.models

    def net(build, file, nodes):
        model = build()
        model.load_state_dict(load_file(os.path.join(weights, file)), strict=False)
        return create_feature_extractor(model.eval().requires_grad_(False), return_nodes=nodes)

    alex = net(m.alexnet, "alexnet.safetensors", ["features.4", "features.11"])
    prep = transforms.Compose([resize(256), IMAGENET])
    for node, name in (("features.4", "AlexNet(2)"), ("features.11", "AlexNet(5)")):
        values[name] = two_way(features(alex, node, images, prep), features(alex, node, recons, prep))
    inception = net(lambda: m.inception_v3(aux_logits=False, init_weights=False, transform_input=True),
                    "inception_v3.safetensors", ["avgpool"])
    prep = transforms.Compose([resize(342), IMAGENET])
    values["InceptionV3"] = two_way(features(inception, "avgpool", images, prep), features(inception, "avgpool", recons, prep))
    clip = CLIPVisionModelWithProjection.from_pretrained(os.path.join(args.dir, "clip")).eval()
    embed = lambda x: clip(pixel_values=x).image_embeds  # noqa: E731
    prep = transforms.Compose([resize(224), CLIP])
    values["CLIP"] = two_way(features(embed, None, images, prep), features(embed, None, recons, prep))
    for file, build, size, name in (("efficientnet_b1.safetensors", m.efficientnet_b1, 255, "EffNet-B"),
                                    ("swav_resnet50.safetensors", m.resnet50, 224, "SwAV")):
        model = net(build, file, ["avgpool"])
        prep = transforms.Compose([resize(size), IMAGENET])
        a, b = features(model, "avgpool", images, prep), features(model, "avgpool", recons, prep)
        values[name] = float(np.mean([scipy.spatial.distance.correlation(a[i], b[i]) for i in range(n)]))
    seconds = time.perf_counter() - start
    import resource
    print(json.dumps({"impl": "python (MindEye2 notebook's computation)", "images": n, "seconds": round(seconds, 2),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "values": values, "torch": torch.__version__, "torchvision": torchvision.__version__}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup")
    s.add_argument("dir")
    s.add_argument("--images", type=int, default=32)
    s.set_defaults(run=setup)
    r = sub.add_parser("run")
    r.add_argument("dir")
    r.add_argument("--threads", type=int, default=2)
    r.set_defaults(run=run)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
