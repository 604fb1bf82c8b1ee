#!/usr/bin/env python3
"""Writes the weights of `brainrecon eval`'s metric networks as safetensors with torchvision's
parameter names, on a machine where torchvision and torch.hub can download them:

    python3 -m venv .venv-vision && .venv-vision/bin/pip install -r tools/fixtures/requirements-vision.txt
    .venv-vision/bin/python tools/convert_torchvision.py --out ~/metric-weights
    brainrecon eval --stimuli prepared/subj01 --recons recons/linear --metric-weights ~/metric-weights

Files (the networks and weights of MindEye2's evaluation, and brain-diffuser's EfficientNet):
  alexnet.safetensors             torchvision alexnet, IMAGENET1K_V1
  inception_v3.safetensors        torchvision inception_v3, IMAGENET1K_V1
  efficientnet_b1.safetensors     torchvision efficientnet_b1, IMAGENET1K_V2 (--protocol mindeye)
  efficientnet_b1_v1.safetensors  torchvision efficientnet_b1, IMAGENET1K_V1 (--protocol brain-diffuser)
  swav_resnet50.safetensors       torch.hub facebookresearch/swav:main resnet50 (800 epochs), in
                                  torchvision's resnet50 names
The downloads are pickle files; they are read here, by torch, and never by brainrecon.
Copy the folder to machines without network. Only float tensors are kept (not
num_batches_tracked).
"""
import argparse
import os

import torch
import torchvision
from safetensors.torch import save_file


def floats(state):
    return {k: v.detach().float().contiguous() for k, v in state.items() if v.dtype.is_floating_point}


def save(state, path):
    tmp = path + ".partial"
    save_file(floats(state), tmp)
    os.replace(tmp, path)
    print("wrote", path)


def swav_state():
    model = torch.hub.load("facebookresearch/swav:main", "resnet50")
    state = model.state_dict()
    # SwAV's ResNet pads before conv1 instead of in it; its parameters carry torchvision's names
    names = set(torchvision.models.resnet50().state_dict())
    kept = {k: v for k, v in state.items() if k in names}
    missing = sorted(n for n in names if n not in kept and not n.startswith("fc.") and "num_batches" not in n)
    if missing:
        raise SystemExit(f"SwAV weights lack {missing[:5]}...")
    return kept


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write the .safetensors files into")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    m = torchvision.models
    jobs = {
        "alexnet.safetensors": lambda: m.alexnet(weights=m.AlexNet_Weights.IMAGENET1K_V1).state_dict(),
        "inception_v3.safetensors": lambda: m.inception_v3(weights=m.Inception_V3_Weights.IMAGENET1K_V1).state_dict(),
        "efficientnet_b1.safetensors": lambda: m.efficientnet_b1(weights=m.EfficientNet_B1_Weights.IMAGENET1K_V2).state_dict(),
        "efficientnet_b1_v1.safetensors": lambda: m.efficientnet_b1(weights=m.EfficientNet_B1_Weights.IMAGENET1K_V1).state_dict(),
        "swav_resnet50.safetensors": swav_state,
    }
    for name, state in jobs.items():
        save(state(), os.path.join(args.out, name))


if __name__ == "__main__":
    main()
