#!/usr/bin/env python3
"""Convert a Salesforce BLIP captioning checkpoint (`.pth`, e.g. `model_base_capfilt_large.pth`)
into transformers' `BlipForConditionalGeneration` layout: `model.safetensors` + `config.json`,
loadable by brainrecon-language (`BlipForConditionalGeneration::load`) and by transformers.

Usage (torch and safetensors needed, e.g. .venv-torch):

    python tools/convert_blip.py model_base_capfilt_large.pth OUT_DIR --image-size 240 \
        [--vocab bert-base-uncased/vocab.txt]

Renames (Salesforce → transformers):
  visual_encoder.cls_token                → vision_model.embeddings.class_embedding
  visual_encoder.pos_embed                → vision_model.embeddings.position_embedding
  visual_encoder.patch_embed.proj.*       → vision_model.embeddings.patch_embedding.*
  visual_encoder.blocks.N.norm1.*         → vision_model.encoder.layers.N.layer_norm1.*
  visual_encoder.blocks.N.attn.qkv.*      → vision_model.encoder.layers.N.self_attn.qkv.*
  visual_encoder.blocks.N.attn.proj.*     → vision_model.encoder.layers.N.self_attn.projection.*
  visual_encoder.blocks.N.norm2.*         → vision_model.encoder.layers.N.layer_norm2.*
  visual_encoder.blocks.N.mlp.fc{1,2}.*   → vision_model.encoder.layers.N.mlp.fc{1,2}.*
  visual_encoder.norm.*                   → vision_model.post_layernorm.*
  text_decoder.bert.*, text_decoder.cls.* → unchanged
Dropped: the `position_ids` buffer, `cls.predictions.decoder.{weight,bias}` when they equal the
word embeddings / `cls.predictions.bias` (transformers ties them), and everything that is not
the captioner (text_encoder, momentum encoders `*_m`, projections, queues...), listed on stdout.

`--image-size S` does what Salesforce's `blip_decoder(image_size=S)` does at load time
(`interpolate_pos_embed`): when S / patch differs from the stored grid, the patch rows of the
position table are resized with `F.interpolate(mode="bicubic", align_corners=False)`, the class
row kept (a 224-px checkpoint's 14×14 grid → 15×15 for 240 px, as Takagi & Nishimoto's caption
features use). The config records S as `image_size`.

config.json: dimensions read from the tensors; attention heads from --vision-heads and
--text-heads (default width / 64: 12 for ViT-B and BERT-base); the ViT's LayerNorm eps 1e-6 as
Salesforce's ViT builds it (transformers' own conversion keeps its default 1e-5), BERT's 1e-12;
bos [DEC] = vocab − 2, pad 0, [SEP] 102 (BERT-base-uncased plus BLIP's [DEC], [ENC]).

With --vocab (bert-base-uncased's vocab.txt) the tokenizer files are written too: vocab.txt and
a tokenizer_config.json naming [DEC] as bos_token and [ENC] as an extra special token
(brainrecon's tokenizer appends both after the vocabulary, as Salesforce's `init_tokenizer`).

The renaming is tested by tools/test_convert_blip.py.
"""

import argparse
import json
import math
import os
import re
import shutil
import sys

import torch
import torch.nn.functional as F

VISION_RENAMES = [
    (r"^visual_encoder\.cls_token$", "vision_model.embeddings.class_embedding"),
    (r"^visual_encoder\.pos_embed$", "vision_model.embeddings.position_embedding"),
    (r"^visual_encoder\.patch_embed\.proj\.", "vision_model.embeddings.patch_embedding."),
    (r"^visual_encoder\.blocks\.(\d+)\.norm1\.", r"vision_model.encoder.layers.\1.layer_norm1."),
    (r"^visual_encoder\.blocks\.(\d+)\.norm2\.", r"vision_model.encoder.layers.\1.layer_norm2."),
    (r"^visual_encoder\.blocks\.(\d+)\.attn\.qkv\.", r"vision_model.encoder.layers.\1.self_attn.qkv."),
    (
        r"^visual_encoder\.blocks\.(\d+)\.attn\.proj\.",
        r"vision_model.encoder.layers.\1.self_attn.projection.",
    ),
    (r"^visual_encoder\.blocks\.(\d+)\.mlp\.(fc[12])\.", r"vision_model.encoder.layers.\1.mlp.\2."),
    (r"^visual_encoder\.norm\.", "vision_model.post_layernorm."),
]


def rename(key):
    """The transformers name of a Salesforce captioner tensor, or None when it is not kept."""
    if key.startswith("text_decoder."):
        return None if key.endswith("embeddings.position_ids") else key
    for pattern, replacement in VISION_RENAMES:
        if re.search(pattern, key):
            return re.sub(pattern, replacement, key)
    return None


def interpolate_pos_embed(table, new_grid):
    """Salesforce's interpolate_pos_embed: [1, 1 + g·g, d] → [1, 1 + new·new, d]."""
    n, d = table.shape[-2], table.shape[-1]
    grid = int(math.isqrt(n - 1))
    if grid * grid + 1 != n:
        sys.exit(f"pos_embed has {n} rows: not a class token and a square grid")
    if grid == new_grid:
        return table
    extra, patches = table[:, :1], table[:, 1:]
    patches = patches.reshape(-1, grid, grid, d).permute(0, 3, 1, 2)
    patches = F.interpolate(
        patches.float(), size=(new_grid, new_grid), mode="bicubic", align_corners=False
    ).to(table.dtype)
    patches = patches.permute(0, 2, 3, 1).flatten(1, 2)
    print(f"position table: {grid}x{grid} -> {new_grid}x{new_grid} (bicubic)")
    return torch.cat((extra, patches), dim=1)


def load_state_dict(path, trust_pickle):
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as e:  # noqa: BLE001 - the message says what to do
        sys.exit(
            f"{path}: cannot be read with weights_only=True ({e}); if you trust the file, "
            "rerun with --trust-pickle"
        )
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or "visual_encoder.pos_embed" not in state:
        sys.exit(
            f"{path}: expected a Salesforce BLIP checkpoint (a dict with 'model' holding "
            "visual_encoder.* and text_decoder.* tensors)"
        )
    return state


def convert(state, image_size=None):
    """Renamed, captioner-only tensors (contiguous) and the names left out."""
    out, dropped = {}, []
    for key, value in state.items():
        new = rename(key)
        if new is None or not torch.is_tensor(value):
            dropped.append(key)
            continue
        out[new] = value.detach().clone().contiguous()
    if image_size is not None:
        patch = out["vision_model.embeddings.patch_embedding.weight"].shape[-1]
        name = "vision_model.embeddings.position_embedding"
        out[name] = interpolate_pos_embed(out[name], image_size // patch).contiguous()
    words = out.get("text_decoder.bert.embeddings.word_embeddings.weight")
    for tied, source in [
        ("text_decoder.cls.predictions.decoder.weight", words),
        ("text_decoder.cls.predictions.decoder.bias", out.get("text_decoder.cls.predictions.bias")),
    ]:
        if tied in out and source is not None and torch.equal(out[tied], source):
            del out[tied]
            dropped.append(tied + " (tied)")
    return out, dropped


def count_layers(names, prefix):
    found = {int(m.group(1)) for n in names if (m := re.match(re.escape(prefix) + r"(\d+)\.", n))}
    return max(found) + 1 if found else 0


def make_config(t, image_size, vision_heads, text_heads, vision_eps):
    names = list(t)
    d = t["vision_model.embeddings.class_embedding"].shape[-1]
    patch = t["vision_model.embeddings.patch_embedding.weight"].shape[-1]
    grid = math.isqrt(t["vision_model.embeddings.position_embedding"].shape[1] - 1)
    vocab, td = t["text_decoder.bert.embeddings.word_embeddings.weight"].shape
    vision = {
        "model_type": "blip_vision_model",
        "hidden_size": d,
        "intermediate_size": t["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        "num_hidden_layers": count_layers(names, "vision_model.encoder.layers."),
        "num_attention_heads": vision_heads or d // 64,
        "image_size": image_size or grid * patch,
        "patch_size": patch,
        "hidden_act": "gelu",
        "layer_norm_eps": vision_eps,
    }
    text = {
        "model_type": "blip_text_model",
        "vocab_size": vocab,
        "hidden_size": td,
        "encoder_hidden_size": d,
        "intermediate_size": t["text_decoder.bert.encoder.layer.0.intermediate.dense.weight"].shape[0],
        "num_hidden_layers": count_layers(names, "text_decoder.bert.encoder.layer."),
        "num_attention_heads": text_heads or td // 64,
        "max_position_embeddings": t["text_decoder.bert.embeddings.position_embeddings.weight"].shape[0],
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "bos_token_id": vocab - 2,
        "pad_token_id": 0,
        "sep_token_id": 102,
        "eos_token_id": 2,
        "is_decoder": True,
        "tie_word_embeddings": "text_decoder.cls.predictions.decoder.weight" not in t,
    }
    for what, c in [("vision", vision), ("text", text)]:
        heads, width = c["num_attention_heads"], c["hidden_size"]
        if heads <= 0 or width % heads:
            sys.exit(f"{what} width {width} is not divisible into {heads} heads: pass --{what}-heads")
    return {
        "architectures": ["BlipForConditionalGeneration"],
        "model_type": "blip",
        "projection_dim": 512,
        "tie_word_embeddings": text["tie_word_embeddings"],
        "vision_config": vision,
        "text_config": text,
    }


def write_tokenizer(vocab, out_dir):
    shutil.copyfile(vocab, os.path.join(out_dir, "vocab.txt"))
    config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "bos_token": "[DEC]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "mask_token": "[MASK]",
        "extra_special_tokens": ["[ENC]"],
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="Salesforce BLIP .pth (e.g. model_base_capfilt_large.pth)")
    p.add_argument("out_dir")
    p.add_argument("--image-size", type=int, help="resize the position table for this image size")
    p.add_argument("--vision-heads", type=int, help="ViT attention heads (default width/64)")
    p.add_argument("--text-heads", type=int, help="BERT attention heads (default width/64)")
    p.add_argument("--vision-layer-norm-eps", type=float, default=1e-6)
    p.add_argument("--vocab", help="bert-base-uncased vocab.txt to write the tokenizer files")
    p.add_argument("--trust-pickle", action="store_true", help="torch.load with weights_only=False")
    args = p.parse_args(argv)

    from safetensors.torch import save_file

    state = load_state_dict(args.checkpoint, args.trust_pickle)
    tensors, dropped = convert(state, args.image_size)
    config = make_config(
        tensors, args.image_size, args.vision_heads, args.text_heads, args.vision_layer_norm_eps
    )
    os.makedirs(args.out_dir, exist_ok=True)
    save_file(tensors, os.path.join(args.out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if args.vocab:
        write_tokenizer(args.vocab, args.out_dir)
    print(f"wrote {len(tensors)} tensors to {args.out_dir}; left out {len(dropped)}:")
    groups = sorted({k.split(".")[0] if "(tied)" not in k and "position_ids" not in k else k for k in dropped})
    for g in groups:
        print(f"  {g}")


if __name__ == "__main__":
    main()
