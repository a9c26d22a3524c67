"""landscape.analysis.sharpness and .escape: the measures and the escape, as the commands and
the experiment call them."""

from dataclasses import dataclass
from types import SimpleNamespace

import h5py
import pytest
import torch

from landscape.analysis.escape import EscapeOptions, analyse_escape, escape_batch
from landscape.analysis.sharpness import SharpnessOptions, analyse_sharpness, measure_sharpness
from landscape.parallel import Partition
from landscape.results.escape import EscapeCurve
from landscape.results.sharpness import SharpnessResult
from tests.sharpness.quadratic import Quadratic, dummy_data, mean_loss, spd_matrix

EIGENVALUES = [5.0, 3.0, 2.0, 1.0]


def test_several_radii_are_one_pass_each_named_by_its_radius():
    hessian, _ = spd_matrix(EIGENVALUES)
    x, y = dummy_data()
    options = SharpnessOptions(radii=[0.1, 0.2], steps=40, batch_size=len(x))
    found = measure_sharpness(Quadratic(hessian), mean_loss, x, y, options)
    assert [r.measure for r, _ in found] == ["worst_case_rho0.1", "worst_case_rho0.2"]
    for (result, _), rho in zip(found, (0.1, 0.2)):
        assert result.value == pytest.approx(rho**2 * max(EIGENVALUES) / 2, rel=1e-6)


def _target(tmp_path, model):
    return SimpleNamespace(
        path=tmp_path / "run" / "a.pt", stem="run_a", sha256="ab" * 32, model=model, arch="q",
        epoch=None, phase=None, config={}, checkpoint=SimpleNamespace(format="landscape"),
    )  # fmt: skip


@dataclass(frozen=True)
class WholeShare(Partition):
    """A rank of a world that (here, without other processes) sums over every example: the
    values of one process under the writing rule of its rank."""

    def example_range(self, n: int) -> range:
        return range(n)


@pytest.mark.parametrize("rank, writes", [(0, True), (1, False)], ids=["writer", "not-writer"])
def test_the_measures_are_saved_by_the_writer_only(tmp_path, rank, writes):
    from landscape.sharpness import compute_measure

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    out = tmp_path / "s.h5"
    options = SharpnessOptions(measures=["gradient-norm", "top-eigenvalue"], batch_size=16)
    [(name, result)] = analyse_sharpness(
        options, [_target(tmp_path, model)], x, y, out, partition=WholeShare(rank, 2, "gloo")
    )
    expected = compute_measure(
        "top-eigenvalue", model, torch.nn.functional.cross_entropy, x, y, tol=1e-3
    ).value
    assert list(result.measures) == ["gradient_norm", "top_eigenvalue"]
    assert result.measures["top_eigenvalue"].value == pytest.approx(expected, rel=1e-3)
    assert out.exists() == writes and result.provenance.world_size == 2
    if writes:
        with h5py.File(out) as f:
            assert SharpnessResult.read(f[f"sharpness/{name}"]) == result


def test_an_escape_is_saved_under_its_name_and_reads_back(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    out = tmp_path / "e.h5"
    options = EscapeOptions(rho=0.05, lr=0.1, steps=5, batch_size=16)
    name, curve = analyse_escape(options, _target(tmp_path, model), x, y, out, name="mine")
    assert name == "mine" and curve.step.tolist() == [0, 1, 2, 3, 4, 5]
    with h5py.File(out) as f:
        assert EscapeCurve.read(f["escape/mine"]) == curve


def test_with_batch_statistics_the_escape_batch_is_fixed():
    model = torch.nn.Linear(3, 2)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    options = EscapeOptions(rho=0.05, lr=0.1, steps=1, bn_mode="train")
    assert escape_batch(options, model, torch.nn.functional.cross_entropy, x, y) == 512
