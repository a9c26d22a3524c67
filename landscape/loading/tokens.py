"""``--data tokens:FILE``: a token stream cut into fixed blocks for a causal language model.

Accepted streams:

* nanoGPT's ``train.bin`` / ``val.bin``: raw little-endian ``uint16`` token ids
  (``np.memmap(path, dtype=np.uint16)``); a folder holding both gives the train and test splits;
* ``.npy``: a one-dimensional array of non-negative integers;
* plain text (``.txt``): tokenised with the tokenizer saved in the model folder being analysed
  (``tokenizer.json`` and friends, read offline).

The stream of ``L`` tokens becomes ``floor((L - 1) / T)`` blocks of ``T = --block-size``
tokens: block ``k`` is ``tokens[kT : kT + T]`` and its targets are the next tokens,
``tokens[kT + 1 : kT + T + 1]``, so each token of the stream is predicted exactly once and the
mean loss over all blocks is the stream's next-token loss. ``--samples`` then counts blocks, and
the analysis subset is the usual fixed, seeded choice of blocks
(:func:`landscape.data.fixed_subset`). Streams longer than :data:`MAX_POOL_TOKENS` keep a
seeded choice of that many tokens' worth of blocks (seed 0, the same for every command).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from landscape.data import Data
from landscape.errors import UserError

log = logging.getLogger("landscape.data")

PREFIX = "tokens:"
DEFAULT_BLOCK_SIZE = 256
MAX_POOL_TOKENS = 1 << 23  # 8M tokens: 64 MiB of int64 ids, far more blocks than an analysis uses
POOL_SEED = 0
TEXT_SUFFIXES = (".txt", ".text", ".md")


def is_token_spec(spec: str | None) -> bool:
    return bool(spec) and spec.startswith(PREFIX)


def read_token_stream(path: str | Path, tokenizer_folder: str | Path | None = None) -> np.ndarray:
    """The token ids of one file as a 1-D integer array (a memmap for ``.bin``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--data tokens:{path}: no such file")
    if path.stat().st_size == 0:
        raise UserError(f"--data tokens:{path}: the file is empty")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            ids = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserError(f"--data tokens:{path}: not a readable .npy array ({exc})") from exc
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise UserError(
                f"--data tokens:{path}: expected a 1-D array of integer token ids, "
                f"got shape {ids.shape} and dtype {ids.dtype}"
            )
    elif suffix in TEXT_SUFFIXES:
        ids = _tokenise_text(path, tokenizer_folder)
    else:  # nanoGPT's convention, whatever the name: raw uint16
        if path.stat().st_size % 2:
            raise UserError(
                f"--data tokens:{path}: {path.stat().st_size} bytes is not a whole number of "
                "uint16 token ids (nanoGPT .bin); is it a token file?"
            )
        ids = np.memmap(path, dtype=np.uint16, mode="r")
    if ids.size < 2:
        raise UserError(f"--data tokens:{path}: {ids.size} token(s); a block needs at least 2")
    if np.issubdtype(ids.dtype, np.signedinteger) and ids.min() < 0:
        raise UserError(f"--data tokens:{path}: negative token ids")
    if np.issubdtype(ids.dtype, np.unsignedinteger) and ids.dtype.itemsize >= 8:
        largest = int(ids.max())  # ids become int64 below; a larger one would wrap to negative
        if largest > np.iinfo(np.int64).max:
            raise UserError(
                f"--data tokens:{path}: token id {largest} (at position "
                f"{int(np.argmax(ids))}) is larger than any vocabulary; is it a token file?"
            )
    return ids


def _tokenise_text(path: Path, folder: str | Path | None) -> np.ndarray:
    if folder is None:
        raise UserError(
            f"--data tokens:{path} is text; tokenising it needs a model folder with a tokenizer "
            "(tokenizer.json), or give token ids (.bin or .npy)"
        )
    try:
        from landscape.loading.external import hub_offline

        with hub_offline():
            from transformers import AutoTokenizer

            # No code from the folder (a tokenizer's auto_map), nothing from the Hub.
            tokenizer = AutoTokenizer.from_pretrained(
                str(folder), local_files_only=True, trust_remote_code=False
            )
    except ImportError as exc:
        raise UserError("tokenising text needs transformers; pip install transformers") from exc
    except Exception as exc:  # missing files raise OSError, ValueError, ... by version
        raise UserError(
            f"--data tokens:{path} is text, but the model folder {folder} has no usable tokenizer "
            f"({type(exc).__name__}); give token ids (.bin or .npy)"
        ) from exc
    text = path.read_text(encoding="utf-8", errors="replace")
    return np.asarray(tokenizer(text)["input_ids"], dtype=np.int64)


def cut_blocks(ids: np.ndarray, block_size: int, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)``, both ``(blocks, block_size)`` int64: see the module docstring."""
    if block_size < 1:
        raise UserError(f"--block-size must be positive, got {block_size}")
    count = (ids.size - 1) // block_size
    if count < 1:
        raise UserError(
            f"{where}: {ids.size} tokens make no block of --block-size {block_size} "
            "(a block needs block size + 1 tokens)"
        )
    starts = np.arange(count, dtype=np.int64) * block_size
    pool = max(1, MAX_POOL_TOKENS // block_size)
    if count > pool:
        rng = np.random.default_rng(POOL_SEED)
        starts = np.sort(rng.choice(starts, size=pool, replace=False))
        log.info(
            "%s: %d blocks of %d tokens; keeping a fixed choice of %d",
            where,
            count,
            block_size,
            pool,
        )
    offsets = starts[:, None] + np.arange(block_size + 1, dtype=np.int64)
    windows = torch.from_numpy(np.asarray(ids[offsets], dtype=np.int64))
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


def load_token_data(
    spec: str, block_size: int | None = None, tokenizer_folder: str | Path | None = None
) -> Data:
    """``tokens:FILE`` or ``tokens:FOLDER`` (with ``train.bin`` and ``val.bin``) as blocks."""
    target = Path(spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec)
    block_size = block_size or DEFAULT_BLOCK_SIZE
    if target.is_dir():
        train_file, test_file = target / "train.bin", target / "val.bin"
        missing = [p.name for p in (train_file, test_file) if not p.is_file()]
        if missing:
            raise UserError(
                f"--data tokens:{target}: the folder lacks {' and '.join(missing)} (nanoGPT layout)"
            )
    else:
        train_file = test_file = target
    train_x, train_y = cut_blocks(
        read_token_stream(train_file, tokenizer_folder), block_size, str(train_file)
    )
    if test_file == train_file:
        test_x, test_y = train_x, train_y
    else:
        test_x, test_y = cut_blocks(
            read_token_stream(test_file, tokenizer_folder), block_size, str(test_file)
        )
    vocabulary = int(max(train_y.max(), train_x.max(), test_y.max(), test_x.max())) + 1
    return Data(
        name=f"tokens:{target.name}",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=vocabulary,  # the largest id + 1: the vocabulary the stream needs
        input_shape=(block_size,),
        mean=(),
        std=(),
        augmentation="none",
    )
