"""The transformers side of `tools/bench/caption.sh`: BLIP beam-search captioning timed per
image on the encoder states brainrecon drew (states.npy), same settings (3 beams, max_length
20, min_length 5, repetition_penalty 1.5, eos [SEP] 102, pad 0), on the same number of threads.

  python tools/bench/caption_anchor.py --blip DIR --states DIR/states.npy --threads 2
  python tools/bench/caption_anchor.py --make-base DIR   # a random-weight BLIP-base folder
"""
import argparse
import json
import time

import numpy as np
import torch
import transformers
from transformers import BlipConfig, BlipForConditionalGeneration


def make_base(out):
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(BlipConfig()).eval()
    model.save_pretrained(out, safe_serialization=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blip")
    ap.add_argument("--states")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", default="30522,1037,3861,1997")
    ap.add_argument("--make-base")
    args = ap.parse_args()
    if args.make_base:
        make_base(args.make_base)
        return
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = BlipForConditionalGeneration.from_pretrained(args.blip).eval()
    load = time.perf_counter() - started
    states = torch.from_numpy(np.load(args.states))
    prompt = torch.tensor([[int(i) for i in args.prompt.split(",")]])
    ids = []
    with torch.inference_mode():
        started = time.perf_counter()
        for i in range(states.shape[0]):
            out = model.text_decoder.generate(
                input_ids=prompt,
                encoder_hidden_states=states[i : i + 1],
                encoder_attention_mask=torch.ones(states.shape[:2][1:], dtype=torch.long)[None],
                eos_token_id=102,
                pad_token_id=0,
                num_beams=3,
                max_length=20,
                min_length=5,
                repetition_penalty=1.5,
                do_sample=False,
            )
            ids.append(out[0].tolist())
        per_image = (time.perf_counter() - started) / states.shape[0]
    print(json.dumps({"transformers": transformers.__version__, "torch": torch.__version__,
                      "threads": args.threads, "seconds_load": load,
                      "seconds_per_image": per_image, "ids": ids}))


if __name__ == "__main__":
    main()
