"""timm and Hugging Face model folders through the real commands; the API gives the same numbers."""

from __future__ import annotations

import json
import textwrap

import h5py
import numpy as np
import pytest
import torch

import landscape
from landscape.cli import main
from landscape.curvature import hessian_eigenvalues
from landscape.data import fixed_subset
from landscape.loading.loader import DataSource, ModelSource, load_models
from landscape.losses import make_loss
from tests import external_models as em

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["--device", "cpu", "--dtype", "float64", "--no-trace", "--top-k", "2", "--tol", "1e-8"]

IMAGES = textwrap.dedent(
    """
    import torch

    def images():
        g = torch.Generator().manual_seed(0)
        return torch.randn(6, 3, 32, 32, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    """
)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("external")
    em.save_gpt2(root / "gpt2")
    em.save_timm(em.vit(), root / "vit", em.VIT_ARGS)
    em.save_timm(em.convnext(), root / "convnext", em.CONVNEXT_ARGS)
    for kind in ("llama", "vit", "convnext", "resnet"):
        em.save_hf(kind, root / f"hf-{kind}")
    em.token_file(root / "train.bin")
    (root / "images.py").write_text(IMAGES)
    return root


def eigenvalues(path, stem) -> np.ndarray:
    """The eigenvalues of the one result group named ``<run>_<stem>``."""
    with h5py.File(path, "r") as fh:
        (group,) = [name for name in fh["hessian"] if name.endswith(f"_{stem}")]
        return np.asarray(fh[f"hessian/{group}/eigenvalues"])


def api_eigenvalues(folder, data: str, samples: int, block_size: int | None = None) -> np.ndarray:
    """The notebook path: ``landscape.load`` of the folder, then the curvature API."""
    model, dataset, _ = landscape.load(folder, data=data, block_size=block_size, dtype="float64")
    x, y = fixed_subset(*dataset.split("train"), samples, 0)
    result = hessian_eigenvalues(
        model, make_loss(), x.double() if x.is_floating_point() else x, y, k=2, tol=1e-8
    )
    return np.asarray(result.eigenvalues)


def test_gpt2_folder_with_tokens_cli_and_api_agree(ws, tmp_path):
    out = tmp_path / "h.h5"
    argv = [
        "hessian",
        str(ws / "gpt2"),
        "--data",
        f"tokens:{ws / 'train.bin'}",
        "--block-size",
        "8",
    ]
    assert main([*argv, "--samples", "4", *FAST, "--out", str(out)]) == 0
    api = api_eigenvalues(ws / "gpt2", f"tokens:{ws / 'train.bin'}", 4, block_size=8)
    np.testing.assert_allclose(eigenvalues(out, "gpt2"), api, rtol=1e-6)


@pytest.mark.parametrize("name", ["vit", "convnext"])
def test_timm_folder_needs_no_arch_and_cli_and_api_agree(ws, tmp_path, name):
    out = tmp_path / "h.h5"
    data = f"{ws / 'images.py'}:images"
    assert (
        main(
            ["hessian", str(ws / name), "--data", data, "--samples", "6", *FAST, "--out", str(out)]
        )
        == 0
    )
    np.testing.assert_allclose(
        eigenvalues(out, name), api_eigenvalues(ws / name, data, 6), rtol=1e-6
    )


@pytest.mark.parametrize("kind", ["vit", "convnext", "resnet"])
def test_transformers_image_classifier_folders_cli_and_api_agree(ws, tmp_path, kind):
    out, data = tmp_path / "h.h5", f"{ws / 'images.py'}:images"
    folder = ws / f"hf-{kind}"
    assert (
        main(["hessian", str(folder), "--data", data, "--samples", "6", *FAST, "--out", str(out)])
        == 0
    )
    np.testing.assert_allclose(
        eigenvalues(out, folder.name), api_eigenvalues(folder, data, 6), rtol=1e-6
    )


def test_llama_folder_with_tokens_cli_and_api_agree(ws, tmp_path):
    out, data = tmp_path / "h.h5", f"tokens:{ws / 'train.bin'}"
    folder = ws / "hf-llama"
    assert (
        main(["hessian", str(folder), "--data", data, "--samples", "4", *FAST, "--out", str(out)])
        == 0
    )
    np.testing.assert_allclose(
        eigenvalues(out, folder.name), api_eigenvalues(folder, data, 4), rtol=1e-6
    )


def test_timm_arch_spec_with_kwargs_reads_a_plain_state_dict(ws, tmp_path):
    model = em.vit(seed=3)
    torch.save(model.state_dict(), tmp_path / "vit.pt")
    kwargs = json.dumps({k: v for k, v in em.VIT_ARGS.items() if k != "num_classes"})
    out = tmp_path / "h.h5"
    argv = [
        "hessian",
        str(tmp_path / "vit.pt"),
        "--arch",
        "timm:vit_tiny_patch16_224",
        "--arch-kwargs",
        kwargs,
        "--num-classes",
        "3",
        "--data",
        f"{ws / 'images.py'}:images",
        "--samples",
        "6",
    ]
    assert main([*argv, *FAST, "--out", str(out)]) == 0
    x, y = torch.load(tmp_path / "vit.pt"), None  # the weights file is left as it was
    assert set(x) == set(model.state_dict()) and y is None


def test_dropout_is_off_during_analysis(ws):
    targets, data = load_models(
        ws / "gpt2", ModelSource(), DataSource(data=f"tokens:{ws / 'train.bin'}")
    )
    model = targets[0].model
    x = data.train_x[:2]
    assert not model.training
    torch.testing.assert_close(model(x), model(x))  # GPT2_CONFIG has dropout 0.1


def test_info_describes_a_model_folder(ws, capsys):
    assert main(["info", str(ws / "gpt2")]) == 0
    text = capsys.readouterr().out
    assert "hf:GPT2LMHeadModel" in text and "hf-folder" in text


def write_config(folder, config: dict) -> None:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))


def bad_folders(ws, tmp):
    no_config = tmp / "no_config"
    no_config.mkdir()
    (no_config / "model.safetensors").write_bytes((ws / "gpt2" / "model.safetensors").read_bytes())
    unknown = tmp / "unknown_type"
    write_config(unknown, {"model_type": "no_such_model", "architectures": ["NoSuchModel"]})
    (unknown / "model.safetensors").write_bytes((ws / "gpt2" / "model.safetensors").read_bytes())
    neither = tmp / "neither"
    write_config(neither, {"hidden_size": 4})
    (neither / "model.safetensors").write_bytes((ws / "gpt2" / "model.safetensors").read_bytes())
    no_weights = tmp / "no_weights"
    write_config(no_weights, json.loads((ws / "gpt2" / "config.json").read_text()))
    big_ids = tmp / "big.bin"
    np.full(200, em.VOCAB + 5, dtype=np.uint16).tofile(big_ids)
    return no_config, unknown, neither, no_weights, big_ids


BAD = {
    "folder-without-config": (lambda f: [str(f[0])], r"without config\.json"),
    "unknown-model-type": (lambda f: [str(f[1])], r"unknown Transformers model type or class"),
    "config-names-no-library": (lambda f: [str(f[2])], r"names neither a timm architecture"),
    "config-without-weights": (lambda f: [str(f[3])], r"no weights"),
    "token-ids-beyond-vocabulary": (
        lambda f: ["{gpt2}", "--data", f"tokens:{f[4]}"],
        r"beyond the vocabulary of 64",
    ),
    "block-size-above-context": (
        lambda f: ["{gpt2}", "--data", "tokens:{bin}", "--block-size", str(em.CONTEXT + 1)],
        r"above the context of 16 tokens",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_error_line_and_nothing_written(ws, tmp_path, capsys, case):
    make, expect = BAD[case]
    folders = bad_folders(ws, tmp_path)
    argv = [a.format(gpt2=ws / "gpt2", bin=ws / "train.bin") for a in make(folders)]
    out = tmp_path / "out.h5"
    if "--data" not in argv:
        argv += ["--data", f"tokens:{ws / 'train.bin'}"]
    assert main(["hessian", *argv, "--device", "cpu", "--samples", "2", "--out", str(out)]) != 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("landscape: error:")]
    assert len(errors) == 1 and errors[0] == lines[-1]
    assert __import__("re").search(expect, errors[0]), errors[0]
    assert not out.exists()


def test_train_a_timm_vit_on_digits_then_analyse_it_without_arch(tmp_path, capsys):
    kwargs = {
        "img_size": 8,
        "patch_size": 4,
        "in_chans": 1,
        "depth": 1,
        "embed_dim": 8,
        "num_heads": 2,
    }
    argv = ["train", "--arch", "timm:vit_tiny_patch16_224", "--arch-kwargs", json.dumps(kwargs)]
    flags = ["--epochs", "1", "--sam-start", "never", "--batch-size", "256", "--device", "cpu"]
    assert main([*argv, *flags, "--out", str(tmp_path), "--run", "vit"]) == 0
    ckpt = tmp_path / "vit" / "epoch-001-sgd.pt"
    out = tmp_path / "h.h5"
    assert main(["hessian", str(ckpt), "--samples", "16", *FAST, "--out", str(out)]) == 0
    reference = _top_eigenvalues_by_finite_differences(ckpt, samples=16, k=2)
    np.testing.assert_allclose(eigenvalues(out, "epoch-001-sgd"), reference, rtol=1e-6)


def _top_eigenvalues_by_finite_differences(ckpt, samples: int, k: int) -> np.ndarray:
    """The dense float64 Hessian from central differences of gradients, (g(θ+εe_i) −
    g(θ−εe_i)) / 2ε: independent of double backward (and of torch.func.hessian's LayerNorm
    cross terms)."""
    model, dataset, _ = landscape.load(ckpt, dtype="float64")
    model.eval()
    x, y = fixed_subset(*dataset.split("train"), samples, 0)
    params = [p for p in model.parameters() if p.requires_grad]
    theta = torch.nn.utils.parameters_to_vector(params).detach()

    def gradient(flat):
        torch.nn.utils.vector_to_parameters(flat, params)
        loss = make_loss()(model(x.double()), y)
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])

    eps = 1e-5
    columns = []
    for i in range(theta.numel()):
        step = torch.zeros_like(theta)
        step[i] = eps
        columns.append((gradient(theta + step) - gradient(theta - step)) / (2 * eps))
    dense = torch.stack(columns, dim=1)
    dense = (dense + dense.T) / 2
    return torch.linalg.eigvalsh(dense).flip(0)[:k].numpy()


def test_text_is_tokenised_with_the_model_folders_tokenizer(ws, tmp_path):
    folder = tmp_path / "gpt2"
    em.save_gpt2(folder)
    words = em.save_word_tokenizer(folder)
    ids = [(5 * i) % (em.VOCAB - 1) + 1 for i in range(100)]
    (tmp_path / "a.txt").write_text(" ".join(words[i] for i in ids))
    from_text = load_models(folder, ModelSource(), DataSource(data=f"tokens:{tmp_path / 'a.txt'}"))[
        1
    ]
    np.save(tmp_path / "a.npy", np.asarray(ids))
    from_ids = load_models(folder, ModelSource(), DataSource(data=f"tokens:{tmp_path / 'a.npy'}"))[
        1
    ]
    assert torch.equal(from_text.train_x, from_ids.train_x)
    assert from_text.input_shape == (em.CONTEXT,)  # the default block: the model's context
