"""landscape info: what a checkpoint or result file holds, on stdout."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

from landscape import cli, store
from landscape.checkpoint import FORMAT, save_checkpoint
from landscape.models import build_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("cnn-bn", (1, 8, 8), 10)


def parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def info(capsys, *argv):
    code = cli.main(["info", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_landscape_checkpoint_is_described(tmp_path, model, capsys):
    save_checkpoint(tmp_path / "epoch-007-sam.pt", {
        "format": FORMAT, "version": 1, "arch": "cnn-bn", "model": model.state_dict(), "epoch": 7,
        "phase": "sam", "config": {"dataset": "digits"}, "history": [{}] * 7,
    })
    code, out, _ = info(capsys, tmp_path / "epoch-007-sam.pt")
    assert code == 0
    assert "landscape (torch.save zip archive)" in out
    assert "cnn-bn" in out and "7 / sam" in out and "digits" in out
    assert f"{parameters(model):,}" in out


def test_dataparallel_state_dict_shows_the_stripped_prefix(tmp_path, model, capsys):
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, tmp_path / "dp.pt")
    code, out, _ = info(capsys, tmp_path / "dp.pt")
    assert code == 0
    assert "state_dict" in out and "prefixes stripped: module." in out and "give --arch" in out


def test_safetensors_file_is_described(tmp_path, model, capsys):
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(tmp_path / "w.safetensors"), metadata={"arch": "cnn-bn"})
    code, out, _ = info(capsys, tmp_path / "w.safetensors")
    assert code == 0 and "safetensors" in out and "cnn-bn" in out


def test_with_arch_the_model_is_loaded_as_analyses_load_it(tmp_path, model, capsys):
    torch.save({"state_dict": {"model." + k: v for k, v in model.state_dict().items()}, "epoch": 3},
               tmp_path / "lightning.ckpt")
    code, out, _ = info(capsys, tmp_path / "lightning.ckpt", "--arch", "cnn-bn", "--dataset", "digits")
    assert code == 0
    assert "weights under:     state_dict" in out and "3 / -" in out and "shared prefix:     model." in out
    assert "model:             cnn-bn" in out and "stripped prefix 'model.'" in out


def test_resnet18_dataparallel_example_from_the_readme(tmp_path, capsys):
    import torchvision

    net = torchvision.models.resnet18(num_classes=10)
    torch.save(torch.nn.DataParallel(net).state_dict(), tmp_path / "resnet18_dp.pt")
    (tmp_path / "data.py").write_text(textwrap.dedent(
        """
        import torch

        def cifar_like():
            return torch.randn(4, 3, 32, 32), torch.arange(4)
        """
    ))
    code, out, _ = info(
        capsys, tmp_path / "resnet18_dp.pt", "--arch", "torchvision:resnet18", "--num-classes", "10",
        "--data", f"{tmp_path / 'data.py'}:cifar_like",
    )
    assert code == 0
    assert "prefixes stripped: module." in out
    assert f"torchvision:resnet18, {parameters(net):,} parameters" in out


def test_result_file_lists_groups_shapes_and_provenance(tmp_path, capsys):
    with store.transaction(tmp_path / "r.h5", command=["landscape", "hessian"]) as f:
        group = store.replace_group(f, "hessian/epoch-010-sgd")
        store.write_dataset(group, "eigenvalues", [3.0, 2.0, 1.0])
        store.set_provenance(group, {
            "checkpoint": "ckpt/epoch-010-sgd.pt", "checkpoint_sha256": "ab", "arch": "resnet20",
            "epoch": 10, "phase": "sgd", "split": "train", "samples": 512, "bn_mode": "eval",
            "dtype": "float64", "seed": 0, "seconds": 1.5, "config": {"k": 3},
        })
    code, out, _ = info(capsys, tmp_path / "r.h5")
    assert code == 0
    assert "hessian/epoch-010-sgd" in out and "eigenvalues: (3,)" in out
    assert "arch=resnet20" in out and "samples=512" in out


def test_json_output_is_one_object_per_file(tmp_path, model, capsys):
    torch.save(model.state_dict(), tmp_path / "a.pt")
    code, out, _ = info(capsys, tmp_path / "a.pt", "--json")
    described = json.loads(out)
    assert code == 0 and described["format"] == "state_dict" and described["tensors"] == len(model.state_dict())


def test_a_bad_file_among_good_ones_prints_nothing_but_the_error(tmp_path, model, capsys):
    torch.save(model.state_dict(), tmp_path / "good.pt")
    (tmp_path / "bad.pt").write_bytes(b"")
    code, out, err = info(capsys, tmp_path / "good.pt", tmp_path / "bad.pt")
    assert code == 1 and out == ""
    assert err.strip().startswith("landscape: error:") and "is empty" in err


def test_model_and_data_flags_become_sources():
    from landscape.cli.common import data_source_from_args, model_source_from_args

    parser, _ = cli.build_parser()
    args = parser.parse_args([
        "hessian", "x.pt", "--arch", "cnn", "--arch-kwargs", '{"width": 8}', "--num-classes", "3",
        "--trust-checkpoint", "--non-strict", "--ema", "--dataset", "cifar10", "--data-dir", "d",
        "--mean", "0.5,0.4,0.3", "--std", "0.2", "--loss", "mse",
    ])
    model = model_source_from_args(args)
    data = data_source_from_args(args)
    assert (model.arch, model.arch_kwargs, model.num_classes) == ("cnn", {"width": 8}, 3)
    assert model.trust and not model.strict and model.ema
    assert (data.dataset, data.data_dir, data.mean, data.std, data.loss) == (
        "cifar10", "d", (0.5, 0.4, 0.3), (0.2,), "mse"
    )
