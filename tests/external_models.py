"""Tiny random timm and Hugging Face models, built from configs and saved as model folders.

Sizes are chosen so that an exact dense float64 Hessian takes a second: a 2-layer GPT-2 with a
64-token vocabulary and a 16-token context, a 2-block ViT and a ConvNeXt at 32x32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")

VOCAB = 64
CONTEXT = 16

GPT2_CONFIG = dict(
    vocab_size=VOCAB,
    n_positions=CONTEXT,
    n_embd=4,
    n_layer=2,
    n_head=2,
    n_inner=8,
    bos_token_id=0,
    eos_token_id=0,
    resid_pdrop=0.1,
    embd_pdrop=0.1,
    attn_pdrop=0.1,
)
VIT_ARGS = dict(
    img_size=32, patch_size=16, depth=2, embed_dim=4, num_heads=2, mlp_ratio=2.0, num_classes=3
)
CONVNEXT_ARGS = dict(depths=(1, 1, 1, 1), dims=(2, 2, 4, 4), num_classes=3)


def gpt2(seed: int = 0, attn_implementation: str = "sdpa", dtype=torch.float32):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(**GPT2_CONFIG)
    config._attn_implementation = attn_implementation
    return transformers.GPT2LMHeadModel(config).to(dtype).eval()


def save_gpt2(folder: Path, seed: int = 0) -> Path:
    gpt2(seed).save_pretrained(folder)
    return folder


def save_hf(kind: str, folder: Path, seed: int = 0) -> Path:
    """A tiny random Transformers model of ``kind`` saved with ``save_pretrained``."""
    torch.manual_seed(seed)
    t = transformers
    if kind == "llama":
        config = t.LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=CONTEXT,
            bos_token_id=0,
            eos_token_id=0,
        )
        model = t.LlamaForCausalLM(config)
    elif kind == "vit":
        config = t.ViTConfig(
            image_size=32,
            patch_size=16,
            hidden_size=8,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
            num_labels=3,
        )
        model = t.ViTForImageClassification(config)
    elif kind == "convnext":
        config = t.ConvNextConfig(hidden_sizes=[4, 8], depths=[1, 1], num_stages=2, num_labels=3)
        model = t.ConvNextForImageClassification(config)
    elif kind == "resnet":
        config = t.ResNetConfig(
            embedding_size=4, hidden_sizes=[4, 8], depths=[1, 1], layer_type="basic", num_labels=3
        )
        model = t.ResNetForImageClassification(config)
    else:
        raise ValueError(kind)
    model.save_pretrained(folder)
    return folder


def save_word_tokenizer(folder: Path) -> list[str]:
    """A word-level tokenizer of ``VOCAB`` words ``w0 .. w62`` (id 0 is unknown), saved offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]"] + [f"w{i}" for i in range(VOCAB - 1)]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")
    fast.save_pretrained(folder)
    return words


def vit(seed: int = 0):
    torch.manual_seed(seed)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, **VIT_ARGS).eval()


def convnext(seed: int = 0):
    torch.manual_seed(seed)
    return timm.create_model("convnext_atto", pretrained=False, **CONVNEXT_ARGS).eval()


def save_timm(model, folder: Path, model_args: dict) -> Path:
    from timm.models._hub import save_for_hf

    save_for_hf(model, str(folder), model_args=model_args, safe_serialization=True)
    return folder


def token_file(path: Path, count: int = 600, vocab: int = VOCAB, seed: int = 0) -> Path:
    """A nanoGPT-style ``.bin`` of uint16 ids with some structure (a noisy counter), so the
    loss is not flat in every direction."""
    rng = np.random.default_rng(seed)
    ids = (np.arange(count) * 7 + rng.integers(0, 3, count)) % vocab
    ids.astype(np.uint16).tofile(path)
    return path


def token_blocks(
    count: int = 4, block: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    stream = torch.from_numpy(rng.integers(0, VOCAB, count * block + 1)).long()
    x = torch.stack([stream[i * block : i * block + block] for i in range(count)])
    y = torch.stack([stream[i * block + 1 : i * block + block + 1] for i in range(count)])
    return x, y
