"""Token streams cut into fixed next-token blocks (``--data tokens:FILE``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.data import fixed_subset
from landscape.errors import UserError
from landscape.loading.tokens import cut_blocks, load_token_data


def test_blocks_tile_the_stream_and_targets_are_the_next_tokens():
    ids = np.arange(23)
    x, y = cut_blocks(ids, 5, "stream")
    assert x.shape == y.shape == (4, 5)  # (23 - 1) // 5 blocks
    assert torch.equal(x.flatten(), torch.arange(20))  # every token predicted exactly once
    assert torch.equal(y, x + 1)


@pytest.mark.parametrize("suffix", [".bin", ".npy"])
def test_nanogpt_bin_and_npy_give_the_same_blocks(tmp_path, suffix):
    ids = np.random.default_rng(0).integers(0, 300, 101)
    path = tmp_path / f"train{suffix}"
    if suffix == ".bin":
        ids.astype(np.uint16).tofile(path)
    else:
        np.save(path, ids.astype(np.int32))
    data = load_token_data(f"tokens:{path}", block_size=10)
    assert data.train_x.dtype == torch.int64 and data.input_shape == (10,)
    assert torch.equal(data.train_x.flatten(), torch.from_numpy(ids[:100]))
    assert data.num_classes == int(ids.max()) + 1


def test_a_nanogpt_folder_gives_train_and_val_splits(tmp_path):
    np.arange(50, dtype=np.uint16).tofile(tmp_path / "train.bin")
    np.arange(100, 121, dtype=np.uint16).tofile(tmp_path / "val.bin")
    data = load_token_data(f"tokens:{tmp_path}", block_size=4)
    assert data.train_x.shape == (12, 4) and data.test_x.shape == (5, 4)
    assert int(data.test_x[0, 0]) == 100


def test_samples_pick_fixed_seeded_blocks(tmp_path):
    np.arange(1000, dtype=np.uint16).tofile(tmp_path / "t.bin")
    data = load_token_data(f"tokens:{tmp_path / 't.bin'}", block_size=8)
    a, _ = fixed_subset(data.train_x, data.train_y, 5, seed=1)
    b, _ = fixed_subset(data.train_x, data.train_y, 5, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, data.train_x[:5])


@pytest.mark.parametrize(
    "content, expect",
    [
        (b"\x01\x00\x02", r"not a whole number of uint16"),
        (b"", r"empty"),
        (b"\x01\x00\x02\x00", r"make no block"),
    ],
)
def test_unusable_token_files_are_user_errors(tmp_path, content, expect):
    path = tmp_path / "t.bin"
    path.write_bytes(content)
    with pytest.raises(UserError, match=expect):
        load_token_data(f"tokens:{path}", block_size=8)


def test_text_without_a_tokenizer_is_a_user_error(tmp_path):
    (tmp_path / "a.txt").write_text("hello world")
    with pytest.raises(UserError, match="needs a model folder with a tokenizer"):
        load_token_data(f"tokens:{tmp_path / 'a.txt'}", block_size=2)


def test_a_uint64_token_id_beyond_int64_is_reported_with_its_real_value(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.array([1, 2, 2**64 - 1, 3], dtype=np.uint64))
    with pytest.raises(UserError, match=r"token id 18446744073709551615 \(at position 2\)"):
        load_token_data(f"tokens:{path}", block_size=2)
