"""Small result files in the docs/file-format.md layout. Surfaces and interpolations are written
by their result modules (landscape.results, the one writer of those kinds), the other kinds with
plain h5py, so the plots are tested against the documented format rather than a command.

The builders are plain functions so tests/cli/test_plot_cli.py can load this module by path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from landscape.results import Provenance
from landscape.results.interpolation import Interpolation
from landscape.results.surface import Surface, Trajectory

SWITCH_EPOCH = 80
HESSIAN_EPOCHS = [
    (20, "sgd"),
    (40, "sgd"),
    (60, "sgd"),
    (80, "sgd"),
    (85, "sam"),
    (90, "sam"),
    (100, "sam"),
]
# Names as `landscape interpolate` writes them: barrier_<split>_<loss|error>_<frankle|entezari>.
BARRIERS = {
    "barrier_train_loss_frankle": 0.4321,
    "barrier_train_loss_entezari": 0.3876,
    "barrier_train_error_frankle": 0.0612,
    "barrier_train_error_entezari": 0.0547,
    "barrier_test_loss_frankle": 0.4444,
    "barrier_test_loss_entezari": 0.3999,
    "barrier_test_error_frankle": 0.0666,
    "barrier_test_error_entezari": 0.0599,
}


def provenance(
    group: h5py.Group, stem: str, epoch: int | None, phase: str | None, run: str = "late-sam"
) -> None:
    attrs = {
        "checkpoint": f"checkpoints/{run}/{stem}.pt",
        "checkpoint_sha256": hashlib.sha256(f"{run}/{stem}".encode()).hexdigest(),
        "arch": "resnet20",
        "epoch": epoch if epoch is not None else "",
        "phase": phase or "",
        "split": "train",
        "samples": 512,
        "bn_mode": "eval",
        "dtype": "float32",
        "seed": 0,
        "seconds": 1.5,
        "config": json.dumps({"note": "test fixture"}),
    }
    for key, value in attrs.items():
        group.attrs[key] = value


def provenance_of(stem: str, epoch: int | None, phase: str | None, run: str = "late-sam"):
    """The attributes of :func:`provenance` as the result modules take them."""
    return Provenance(
        checkpoint=f"checkpoints/{run}/{stem}.pt",
        checkpoint_sha256=hashlib.sha256(f"{run}/{stem}".encode()).hexdigest(),
        arch="resnet20",
        epoch=epoch,
        phase=phase,
        split="train",
        samples=512,
        bn_mode="eval",
        dtype="float32",
        seed=0,
        seconds=1.5,
        config={"note": "test fixture"},
    )


def root(f: h5py.File) -> None:
    f.attrs["schema_version"] = 1
    f.attrs["landscape_version"] = "0.1.0"
    f.attrs["created"] = "2026-01-01T00:00:00+00:00"
    f.attrs["command"] = json.dumps(["landscape", "test"])


def loss_1d(x: np.ndarray) -> np.ndarray:
    return 0.05 + 2.0 * x**2 + 0.3 * x**3


def loss_2d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # Anisotropic and skewed: a transposed or flipped plot draws a different picture.
    return 0.02 + 0.5 * x**2 + 4.0 * y**2 + 0.3 * x * y + 0.2 * x**3


def write_surface_1d(
    f: h5py.File, name: str = "random_1d", scale: float = 1.0, stem: str = "epoch-100-sam"
) -> None:
    x = np.linspace(-1.0, 1.0, 21)
    loss = scale * loss_1d(x)
    metrics = {"train_loss": loss, "test_loss": loss + 0.1}
    metrics |= {
        "train_acc": np.clip(1.0 - loss / 3, 0, 1),
        "test_acc": np.clip(0.9 - loss / 3, 0, 1),
    }
    Surface(
        provenance_of(stem, 100, "sam"),
        x,
        None,
        metrics,
        np.ones(x.size, bool),
        kind="random",
        directions={"x": {"fc.weight": np.zeros(3)}},
    ).write(f.create_group(f"surface/{name}"))


def write_surface_2d(
    f: h5py.File, name: str = "random_2d", nx: int = 15, ny: int = 11, missing_rows: int = 3
) -> None:
    """Non-square (nx != ny) and partial: the last ``missing_rows`` x-rows are not done."""
    x = np.linspace(-1.0, 1.0, nx)
    y = np.linspace(-0.5, 0.5, ny)
    X, Y = np.meshgrid(x, y, indexing="ij")
    loss = loss_2d(X, Y)
    done = np.ones((nx, ny), bool)
    if missing_rows:
        done[-missing_rows:, :] = False
        done[-missing_rows - 1, ny // 2 :] = False
    metrics = {
        "train_loss": loss,
        "test_loss": loss + 0.2,
        "train_acc": np.clip(1 - loss / 5, 0, 1),
        "test_acc": np.clip(0.9 - loss / 5, 0, 1),
    }
    metrics = {k: np.where(done, v, np.nan) for k, v in metrics.items()}
    stored = Surface(provenance_of("epoch-080-sgd", 80, "sgd"), x, y, metrics, done, kind="random")
    stored.write(f.create_group(f"surface/{name}"))


def write_pca_surface(f: h5py.File, name: str = "pca") -> None:
    x = np.linspace(-3.0, 3.0, 17)
    y = np.linspace(-1.5, 1.5, 13)
    X, Y = np.meshgrid(x, y, indexing="ij")
    epochs = np.array([10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95, 100])
    s = np.linspace(1, 0, epochs.size)
    trajectory = Trajectory.empty(
        [],
        x=-2.6 * s,
        y=1.2 * s * np.sin(3 * s),
        epoch=epochs.astype(float),
        distance_to_plane=np.zeros(epochs.size),
        phase=["sgd" if e <= SWITCH_EPOCH else "sam" for e in epochs],
        checkpoint=[f"checkpoints/late-sam/epoch-{e:03d}.pt" for e in epochs],
    )
    Surface(
        provenance_of("epoch-100-sam", 100, "sam"),
        x,
        y,
        {"train_loss": 0.01 + 0.3 * X**2 + 1.2 * Y**2, "test_loss": 0.3 + 0.3 * X**2 + 1.2 * Y**2},
        np.ones(X.shape, bool),
        kind="pca",
        explained_variance_ratio=np.array([0.72, 0.18]),
        trajectory=trajectory,
    ).write(f.create_group(f"surface/{name}"))


def _line(stems: list[str], alpha: np.ndarray, metrics: dict, done: np.ndarray, **attrs):
    """An interpolation through the late-sam checkpoints ``stems``, checkpoint k at alpha = k."""
    segment = np.clip(np.floor(alpha), 0, len(stems) - 2).astype(np.int64)
    epochs = [int(stem.split("-")[1]) for stem in stems]
    return Interpolation(
        provenance_of(stems[0], epochs[0], stems[0].rsplit("-", 1)[1]),
        segment,
        alpha - segment,
        metrics,
        done,
        checkpoints=[f"checkpoints/late-sam/{stem}.pt" for stem in stems],
        **attrs,
    )


def write_interpolation(f: h5py.File, name: str = "sgd_to_sam", bump: float = 0.4) -> None:
    alpha = np.linspace(-0.25, 1.25, 31)
    loss = (
        0.05
        + 0.02 * alpha
        + bump * np.sin(np.pi * np.clip(alpha, 0, 1))
        + 2 * np.clip(-alpha, 0, None)
        + 2 * np.clip(alpha - 1, 0, None)
    )
    metrics = {"train_loss": loss, "test_loss": loss + 0.25}
    metrics |= {
        "train_acc": np.clip(0.99 - loss / 4, 0, 1),
        "test_acc": np.clip(0.92 - loss / 4, 0, 1),
    }
    stems = ["epoch-080-sgd", "epoch-100-sam"]
    _line(
        stems,
        alpha,
        metrics,
        np.ones(alpha.size, bool),
        checkpoint_sha256s=[hashlib.sha256(f"late-sam/{s}".encode()).hexdigest() for s in stems],
        epochs=[80, 100],
        phases=["sgd", "sam"],
        barriers={k.removeprefix("barrier_"): v * bump / 0.4 for k, v in BARRIERS.items()},
    ).write(f.create_group(f"interpolation/{name}"))


def write_polyline(f: h5py.File, name: str = "path") -> None:
    """Three checkpoints, checkpoint k at α = k, the second segment higher; a few points not
    done."""
    alpha = np.linspace(0, 2, 21)
    loss = 0.1 + 0.3 * np.sin(np.pi * alpha) ** 2 * np.where(alpha > 1, 2.0, 1.0)
    done = np.ones(alpha.size, bool)
    done[13:15] = False
    stems = ["epoch-040-sgd", "epoch-060-sgd", "epoch-080-sgd"]
    line = _line(stems, alpha, {"train_loss": np.where(done, loss, np.nan)}, done)
    line.provenance = provenance_of("epoch-060-sgd", 60, "sgd")
    line.write(f.create_group(f"interpolation/{name}"))


def eigenvalues_at(epoch: int, phase: str, k: int = 5) -> np.ndarray:
    top = 40.0 + epoch / 2 if phase == "sgd" else 40.0 * np.exp(-(epoch - SWITCH_EPOCH) / 10)
    return top / np.arange(1, k + 1) ** 0.8


def write_hessian(f: h5py.File, run: str = "late-sam") -> None:
    from landscape.results.hessian import Density, Eigenvalues, HessianResult, Trace

    for epoch, phase in HESSIAN_EPOCHS:
        stem = f"epoch-{epoch:03d}-{phase}"
        eig = eigenvalues_at(epoch, phase)
        grid = np.linspace(-5, eig[0] * 1.1, 200)
        values = np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi) + 1e-6
        for lam in eig:
            values += 1e-3 * np.exp(-((grid - lam) ** 2) / 2)
        HessianResult(
            provenance_of(stem, epoch, phase, run),
            hvp_count=200,
            top=Eigenvalues(eig, np.full(eig.size, 1e-5), np.full(eig.size, 1e-9), True, 1e-4, 60),
            trace=Trace(12.0 * eig[0], 0.5 * eig[0], "krylov-hutch++", True, 20, 4, 100),
            density=Density(grid, values, np.zeros((3, 10)), np.full((3, 10), 0.1), 0.1, 40),
        ).write(f.create_group(f"hessian/{stem}"))


def write_sharpness(f: h5py.File) -> None:
    from landscape.results.sharpness import MeasureValue, SharpnessResult

    for epoch, phase in HESSIAN_EPOCHS[2:]:
        stem = f"epoch-{epoch:03d}-{phase}"
        lam = eigenvalues_at(epoch, phase)[0]
        rho = np.array([0.01, 0.02, 0.05, 0.1])
        SharpnessResult(
            provenance_of(stem, epoch, phase),
            {
                "worst_case": MeasureValue(0.01 * lam, parameters={"rho": 0.05}),
                "gradient_norm": MeasureValue(0.001 * lam),
                "average": MeasureValue(0.002 * lam * rho / 0.05, parameters={"rho": rho}),
            },
        ).write(f.create_group(f"sharpness/{stem}"))


def write_escape(f: h5py.File, name: str = "epoch-080-sgd") -> None:
    from landscape.results.escape import EscapeCurve

    step = np.arange(0, 61)
    distance = 1e-3 * np.exp(0.12 * step) / (1 + 1e-3 * np.exp(0.12 * step) / 0.5)
    distance[0] = 0.0  # the start itself: a log axis must cope
    train_loss = 0.02 + 0.3 / (1 + np.exp(-(step - 30) / 4)) * np.exp(-step / 80)
    eig = np.full(step.size, np.nan)
    eig[::10] = 60 * np.exp(-step[::10] / 40)
    EscapeCurve(
        provenance_of(name, 80, "sgd"),
        step=step,
        distance=distance,
        train_loss=train_loss,
        train_acc=1 - train_loss / 2,
        eigenvalue=eig,
        growth_rate=0.12,
        growth_factor=float(np.exp(0.12)),
        fit_start=1,
        fit_stop=30,
        parameters={"rho": 0.05, "lr": 0.01, "unnormalized": False},
    ).write(f.create_group(f"escape/{name}"))


def write_track(f: h5py.File, name: str = "run") -> None:
    from landscape.results import Provenance
    from landscape.results.track import TrackResult

    result = TrackResult(Provenance(checkpoint="", checkpoint_sha256=""))
    for step in range(20, 201, 20):
        result.append(step, {"lambda1": 40 * (1 - np.exp(-step / 60)), "lr": 0.05})
    result.write(f.create_group(f"track/{name}"))


BUILDERS = {
    "surface1d": [write_surface_1d],
    "surface2d": [write_surface_2d],
    "pca": [write_pca_surface],
    "interpolation": [write_interpolation],
    "hessian": [write_hessian],
    "sharpness": [write_sharpness],
    "escape": [write_escape],
    "experiment": [lambda f: write_experiment(f)],
    "track": [write_track],
}


def write_result_file(path: Path, *builders) -> Path:
    with h5py.File(path, "w") as f:
        root(f)
        for build in builders:
            build(f)
    return path


def write_run(
    folder: Path, epochs: int = 12, switch: int | None = 8, corrupt_tail: bool = False
) -> Path:
    """A checkpoints/RUN folder with metrics.jsonl: lr x0.1 at 2/3 of the run, SAM after
    ``switch``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for epoch in range(1, epochs + 1):
        phase = "sam" if switch is not None and epoch > switch else "sgd"
        lines.append(
            json.dumps(
                {
                    "epoch": epoch,
                    "phase": phase,
                    "lr": 0.1 if epoch <= 2 * epochs // 3 else 0.01,
                    "train_loss": 2.0 * np.exp(-epoch / 4),
                    "train_acc": 1 - 0.8 * np.exp(-epoch / 4),
                    "test_loss": 2.1 * np.exp(-epoch / 5) + 0.2,
                    "test_acc": 0.9 - 0.8 * np.exp(-epoch / 5),
                    "seconds": 3.0,
                }
            )
        )
    text = "\n".join(lines) + "\n"
    if corrupt_tail:
        text += '{"epoch": 13, "phase": "sa'
    (folder / "metrics.jsonl").write_text(text)
    return folder


@pytest.fixture(scope="session")
def files(tmp_path_factory) -> dict[str, Path]:
    """One result file per kind, and ``all.h5`` with all of them together."""
    folder = tmp_path_factory.mktemp("results")
    out = {
        kind: write_result_file(folder / f"{kind}.h5", *builders)
        for kind, builders in BUILDERS.items()
    }
    out["all"] = write_result_file(folder / "all.h5", *[b for bs in BUILDERS.values() for b in bs])
    return out


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("checkpoints") / "late-sam")


def assert_decent_png(
    path: Path, width_inches: float | None = None, dpi: int | None = None
) -> np.ndarray:
    """The PNG decodes, is about as wide as asked (bbox 'tight' trims a little) and is not blank."""
    from matplotlib import image

    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50
    if width_inches and dpi:
        assert abs(pixels.shape[1] - width_inches * dpi) <= 0.2 * width_inches * dpi, pixels.shape
    flat = pixels[..., :3].reshape(-1, 3)
    assert len(np.unique(flat, axis=0)) > 20, "image is (nearly) a single colour"
    return pixels


@pytest.fixture
def check_png():
    return assert_decent_png


@pytest.fixture(scope="session")
def loaded(files):
    """The fixture files read through landscape.plot.results (read once per session)."""
    from landscape.plot import results

    return {kind: results.read_result_file(path) for kind, path in files.items()}


@pytest.fixture(scope="session")
def build():
    """This module, for tests that write their own variants of the fixture files."""
    import sys

    return sys.modules[__name__]


EXPERIMENT_ARMS = [  # arm_label, arm, t0, t1, test_acc mean/std, lambda1 mean/std
    ("sgd", "sgd", np.nan, np.nan, 0.900, 0.004, 60.0, 3.0),
    ("late-sam t0=40", "late-sam", 40.0, np.nan, 0.910, 0.003, 30.0, 2.0),
    ("late-sam t0=25", "late-sam", 25.0, np.nan, 0.915, 0.002, 20.0, 1.5),
    ("full-sam", "full-sam", 0.0, np.nan, 0.920, 0.002, 15.0, 1.0),
    ("sam-sgd t1=25", "sam-sgd", 0.0, 25.0, 0.905, 0.003, 45.0, 2.5),
]


def write_experiment(f: h5py.File, name: str = "late-sam") -> None:
    """The summary/runs tables of `landscape experiment late-sam` (notes/EXPERIMENT_LAYOUT.md)."""
    g = f.create_group(f"experiment/{name}")
    for key, value in {
        "kind": "late-sam",
        "dataset": "digits",
        "arch": "mlp",
        "epochs": 50,
        "rho": 0.05,
        "seeds": "[0, 1]",
        "config": "{}",
        "summary_text": "| arm | ... |",
    }.items():
        g.attrs[key] = value
    s = g.create_group("summary")
    columns = list(zip(*EXPERIMENT_ARMS))
    s["arm_label"] = np.array(columns[0], dtype="S")
    s["arm"] = np.array(columns[1], dtype="S")
    s["t0"], s["t1"] = np.array(columns[2]), np.array(columns[3])
    s["n_seeds"] = np.full(len(EXPERIMENT_ARMS), 2)
    s["test_acc_mean"], s["test_acc_std"] = np.array(columns[4]), np.array(columns[5])
    s["lambda1_mean"], s["lambda1_std"] = np.array(columns[6]), np.array(columns[7])
    s["trace_mean"], s["trace_std"] = np.full(5, np.nan), np.full(5, np.nan)  # not computed
    r = g.create_group("runs")
    r["label"] = np.array([b"sgd-s0", b"full-sam-s0"])
    r["arm"] = np.array([b"sgd", b"full-sam"])
    r["test_acc"] = np.array([0.9, 0.92])
