#!/usr/bin/env python3
"""diffusers side of the GPU benchmark (tools/bench/gpu.sh), on the same GPU in the same run.

    python tools/bench/diffusers_gpu.py make-model DIR           # random-weight SD 1.5-size folder
    python tools/bench/diffusers_gpu.py unet --dtype f16 [--compile] [--steps 20]
    python tools/bench/diffusers_gpu.py vae --dtype f16 [--steps 10]
    python tools/bench/diffusers_gpu.py txt2img DIR --dtype f16 [--runs 3]

make-model writes a diffusers folder with SD 1.5's U-Net, VAE and text encoder shapes and
seeded random weights in float16 safetensors (no download): the text encoder is CLIP ViT-L/14's
text tower (12 layers, width 768, 77 positions) over the tokenizer of the project's shapes-ldm,
so both brainrecon and diffusers load the very same files. Timings: warm-up first, then each
run between torch.cuda.synchronize() calls; the median is reported. JSON lines on stdout.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import time

PINS = {"diffusers": "0.42.1"}
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

sys.path.insert(0, os.path.join(ROOT, "tools", "fixtures"))
from bench_diffusers import SD15_UNET, SD15_VAE  # noqa: E402  (the CPU benchmark's configs)


def check_pins():
    import diffusers
    if diffusers.__version__ != PINS["diffusers"]:
        sys.exit(f"diffusers {diffusers.__version__}, want {PINS['diffusers']}")


def timed(run, steps, warmup):
    import torch
    for _ in range(warmup):
        run()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        out = run()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return out, times


def report(bench, dtype, times, **extra):
    import torch
    print(json.dumps(dict(impl="diffusers", bench=bench, dtype=dtype, device=torch.cuda.get_device_name(),
                          median_ms=round(1000 * statistics.median(times), 2),
                          step_ms=[round(1000 * t, 2) for t in times],
                          peak_gpu_mb=round(torch.cuda.max_memory_reserved() / 1e6),
                          torch=torch.__version__, **extra)), flush=True)


def torch_dtype(name):
    import torch
    return {"f16": torch.float16, "f32": torch.float32, "bf16": torch.bfloat16}[name]


def bench_model(args):
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    check_pins()
    torch.manual_seed(0)
    dtype = torch_dtype(args.dtype)
    with torch.inference_mode():
        if args.what == "unet":
            model = UNet2DConditionModel(**SD15_UNET).to("cuda", dtype).eval()
            sample = torch.randn(2, 4, 64, 64, device="cuda", dtype=dtype)
            context = torch.randn(2, 77, 768, device="cuda", dtype=dtype)
            timesteps = torch.tensor([981.0, 981.0], device="cuda")
            forward = lambda: model(sample, timesteps, encoder_hidden_states=context).sample  # noqa: E731
            bench = "unet_step_512_b2"
        else:
            model = AutoencoderKL(**SD15_VAE).to("cuda", dtype).eval()
            z = torch.randn(1, 4, 64, 64, device="cuda", dtype=dtype)
            forward = lambda: model.decode(z).sample  # noqa: E731
            bench = "vae_decode_512_b1"
        if args.compile:
            forward = torch.compile(forward)
        out, times = timed(forward, args.steps, warmup=3 if args.compile else 2)
        assert torch.isfinite(out).all(), "non-finite output"
    report(bench, args.dtype, times, compiled=bool(args.compile))


def make_model(args):
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    check_pins()
    torch.manual_seed(0)
    tokenizer_dir = os.path.join(args.dir, "tokenizer")
    os.makedirs(args.dir, exist_ok=True)
    shutil.copytree(os.path.join(ROOT, "models", "shapes-ldm", "tokenizer"), tokenizer_dir, dirs_exist_ok=True)
    config_path = os.path.join(tokenizer_dir, "tokenizer_config.json")
    config = json.load(open(config_path))
    config["model_max_length"] = 77
    json.dump(config, open(config_path, "w"), indent=2)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    text_config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072,
                                 num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                 hidden_act="quick_gelu", bos_token_id=tokenizer.bos_token_id,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**SD15_VAE), text_encoder=CLIPTextModel(text_config), tokenizer=tokenizer,
        unet=UNet2DConditionModel(**SD15_UNET),
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                clip_sample=False, set_alpha_to_one=False, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16).save_pretrained(args.dir, safe_serialization=True)
    print(json.dumps(dict(made=args.dir)))


def txt2img(args):
    import torch
    from diffusers import StableDiffusionPipeline
    check_pins()
    dtype = torch_dtype(args.dtype)
    start = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(args.dir, torch_dtype=dtype, safety_checker=None,
                                                   requires_safety_checker=False).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    load_s = time.perf_counter() - start
    generator = lambda: torch.Generator("cuda").manual_seed(0)  # noqa: E731
    call = lambda: pipe("a red circle on a grey background", num_inference_steps=args.steps,  # noqa: E731
                        guidance_scale=7.5, generator=generator(), output_type="np").images
    images, times = timed(call, args.runs, warmup=1)
    report("txt2img_512_ddim_cfg7.5", args.dtype, times, steps=args.steps, load_s=round(load_s, 2),
           pipeline="StableDiffusionPipeline.__call__")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for what in ("unet", "vae"):
        p = sub.add_parser(what)
        p.add_argument("--dtype", choices=("f16", "f32", "bf16"), default="f16")
        p.add_argument("--steps", type=int, default=20)
        p.add_argument("--compile", action="store_true")
        p.set_defaults(run=bench_model, what=what)
    p = sub.add_parser("make-model")
    p.add_argument("dir")
    p.set_defaults(run=make_model)
    p = sub.add_parser("txt2img")
    p.add_argument("dir")
    p.add_argument("--dtype", choices=("f16", "f32"), default="f16")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    p.set_defaults(run=txt2img)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
