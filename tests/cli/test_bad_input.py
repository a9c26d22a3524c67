"""Bad input corpus: every kind of bad input ends in one clear line, and nothing else.

Each case runs the real CLI (``python -m landscape ...``) in a subprocess, in an empty working
folder, and checks: exit status != 0; exactly one stderr line starting ``landscape: error:``,
the last one, naming the problem; no traceback; nothing written (no partial output); and the
input files it was given untouched. Starting Python with torch takes seconds, so the selected
cases run in parallel once per session, and only a representative few run by default (the
rest are marked slow).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ERROR_PREFIX = "landscape: error:"


# The analysis command the model/data cases go through.
ANALYSIS = "hessian"
ANALYSIS_FLAGS = ["--device", "cpu", "--samples", "8"]


@dataclass
class Case:
    id: str
    argv: list[str]  # {ws} is the shared input folder; relative paths are in the case's own folder
    expect: str  # regex the error line must match
    fast: bool = False  # in the default run
    skip_if: str = ""  # reason to skip, when set
    absent: list[str] = field(default_factory=list)  # paths that must not exist afterwards


def analysis(ckpt: str, *flags: str, out: str = "out.h5") -> list[str]:
    return [ANALYSIS, ckpt, *flags, *ANALYSIS_FLAGS, "--out", out]


CASES = [
    # ---- files that are not checkpoints
    Case("empty-file", ["info", "{ws}/empty.pt"], r"is empty", fast=True),
    Case("truncated-zip", ["info", "{ws}/truncated.pt"], r"truncated or corrupt zip"),
    Case("random-bytes", ["info", "{ws}/random.bin"], r"not a checkpoint in any known format"),
    Case("directory", ["info", "{ws}/a_folder"], r"is a directory"),
    Case("text-file", ["info", "{ws}/notes.txt"], r"is a text file"),
    Case("missing-file", ["info", "{ws}/nope.pt"], r"does not exist"),
    Case(
        "hdf5-as-checkpoint",
        analysis("{ws}/result.h5", "--arch", "cnn-bn"),
        r"HDF5 result file, not a checkpoint.*landscape info",
    ),
    Case(
        "checkpoint-as-result-file",
        ["plot", "{ws}/good.pt"],
        r"not an HDF5 result file",
    ),
    Case(
        "unreadable-permissions",
        ["info", "{ws}/locked.pt"],
        r"cannot be read",
        skip_if="root reads files whatever their permissions" if IS_ROOT else "",
    ),
    Case(
        "unreadable-io-error",
        ["info", "/proc/self/mem"],
        r"cannot be read",
        skip_if="" if Path("/proc/self/mem").exists() else "no /proc",
    ),
    # ---- checkpoints that must not be unpickled
    Case(
        "unsafe-pickle",
        analysis("{ws}/evil.pt", "--arch", "cnn-bn"),
        r"arbitrary unpickling.*io\.open.*--trust-checkpoint",
        fast=True,
        absent=["{ws}/pwned"],
    ),
    Case("torchscript-untrusted", ["info", "{ws}/scripted.pt"], r"TorchScript.*--trust-checkpoint"),
    # ---- files that name code or loading options for their own model (docs/security.md)
    Case(
        "recorded-shell-command",
        analysis("{ws}/recorded_command.pt"),
        r"'subprocess:getoutput', which is code.*nothing was run.*--trust-checkpoint",
        fast=True,
        absent=["{ws}/pwned_by_command"],
    ),
    Case(
        "safetensors-names-python-file",
        analysis("{ws}/recorded_code.safetensors"),
        r"recorded_arch\.py:build', which is code.*nothing was run",
        absent=["{ws}/pwned_by_import"],
    ),
    Case(
        "timm-folder-checkpoint-path",
        analysis("{ws}/timm_folder"),
        r"checkpoint_path=.*loading option.*--trust-checkpoint",
    ),
    # ---- tiny inputs that ask for more memory than any machine has (docs/security.md)
    Case(
        "compressed-checkpoint-beyond-memory",
        ["info", "{ws}/inflating.pt"],
        r"inflating\.pt \(.* on disk, \d+ compressed entries\).* needs 1\.0 TiB, more than",
    ),
    Case(
        "grid-beyond-memory",
        ["surface", "{ws}/good.pt", "--x=-1:1:1000000", "--y=-1:1:1000000"],
        r"a grid of 1,000,000 x 1,000,000 points needs .*TiB, more than .* available",
    ),
    # ---- checkpoints that do not fit the model
    Case("no-arch-for-third-party", analysis("{ws}/raw.pt"), r"give --arch"),
    Case(
        "wrong-architecture",
        analysis("{ws}/raw.pt", "--arch", "mlp"),
        r"does not fit architecture mlp: .*missing",
    ),
    Case(
        "wrong-class-count",
        analysis("{ws}/three_classes.pt", "--arch", "cnn-bn", "--dataset", "digits"),
        r"shape mismatches.*--num-classes 3",
    ),
    Case(
        "nan-weights",
        analysis("{ws}/nan.pt", "--arch", "cnn-bn"),
        r"NaN or Inf weights in \S+",
    ),
    Case(
        "inf-weights",
        analysis("{ws}/inf.pt", "--arch", "cnn-bn"),
        r"NaN or Inf weights in \S+",
    ),
    Case("ema-absent", analysis("{ws}/raw.pt", "--arch", "cnn-bn", "--ema"), r"--ema"),
    # ---- architectures that cannot be built
    Case(
        "unknown-architecture",
        analysis("{ws}/raw.pt", "--arch", "resnet9000"),
        r"unknown architecture 'resnet9000'",
    ),
    Case(
        "unknown-torchvision-model",
        analysis("{ws}/raw.pt", "--arch", "torchvision:resnet9000"),
        r"no such torchvision",
    ),
    Case(
        "factory-raises",
        analysis("{ws}/raw.pt", "--arch", "{ws}/user_code.py:raises"),
        r"factory raised ValueError: width must be even",
    ),
    Case(
        "factory-returns-non-module",
        analysis("{ws}/raw.pt", "--arch", "{ws}/user_code.py:not_a_module"),
        r"returned a str, not a torch.nn.Module",
    ),
    Case(
        "factory-file-missing",
        analysis("{ws}/raw.pt", "--arch", "{ws}/missing_code.py:net"),
        r"does not exist",
    ),
    Case(
        "bad-arch-kwargs",
        analysis("{ws}/raw.pt", "--arch", "cnn-bn", "--arch-kwargs", "{width: 2"),
        r"--arch-kwargs is not valid JSON",
    ),
    # ---- data that do not fit
    Case(
        "data-shape-mismatch",
        analysis(
            "{ws}/flat.pt",
            "--arch",
            "{ws}/user_code.py:digits_mlp",
            "--data",
            "{ws}/user_code.py:rgb_data",
        ),
        r"does not accept inputs of shape \[3, 32, 32\]",
    ),
    Case(
        "data-factory-returns-garbage",
        analysis("{ws}/raw.pt", "--arch", "cnn-bn", "--data", "{ws}/user_code.py:not_a_module"),
        r"--data .*returned a str",
    ),
    Case(
        "missing-dataset-folder",
        analysis(
            "{ws}/raw.pt", "--arch", "cnn-bn", "--dataset", "cifar10", "--data-dir", "{ws}/no_data"
        ),
        r"cifar10 not found.*--download",
    ),
    Case(
        "dataset-and-data",
        analysis(
            "{ws}/raw.pt",
            "--arch",
            "cnn-bn",
            "--dataset",
            "digits",
            "--data",
            "{ws}/user_code.py:rgb_data",
        ),
        r"either --dataset or --data",
    ),
    # ---- outputs that cannot be written
    Case(
        "output-folder-under-a-file",
        analysis("{ws}/good.pt", out="{ws}/precious.txt/sub/out.h5"),
        r"cannot create output folder .*precious.txt/sub \(Not a directory\)",
    ),
    Case(
        "output-folder-not-writable",
        analysis("{ws}/good.pt", out="{ws}/read_only/out.h5"),
        r"not writable",
        skip_if="root writes anywhere" if IS_ROOT else "",
    ),
    Case(
        "output-exists-not-hdf5",
        analysis("{ws}/good.pt", out="{ws}/precious.txt"),
        r"exists but is not an HDF5 file",
        fast=True,
    ),
    Case(
        "output-is-directory",
        analysis("{ws}/good.pt", out="{ws}/a_folder"),
        r"is a directory",
    ),
    Case(
        "train-run-is-a-path",
        ["train", "--run", "../../escaped", "--epochs", "1"],
        r"--run '\.\./\.\./escaped' is not a run name",
    ),
    # ---- flags
    Case(
        "negative-rho",
        ["sharpness", "{ws}/good.pt", "--rho", "-1"],
        r"--rho: must be a finite number",
    ),
    Case(
        "bad-grid-spec",
        ["surface", "{ws}/good.pt", "--x=1:-1:5"],
        r"MIN must be smaller than MAX",
    ),
    Case("top-k-zero", ["hessian", "{ws}/good.pt", "--top-k", "0"], r"--top-k"),
    Case(
        "config-not-toml", ["info", "{ws}/good.pt", "--config", "{ws}/notes.txt"], r"not valid TOML"
    ),
    # ---- result files damaged where HDF5 does not look (docs/reliability.md)
    Case(
        "result-scalar-bit-flipped",
        ["info", "{ws}/flipped.h5"],
        r"result file \S+flipped.h5 is damaged \(group hessian/a: .*digest",
    ),
    Case(
        "data-ignore-index-labels",
        analysis("{ws}/raw.pt", "--arch", "cnn-bn", "--data", "{ws}/user_code.py:ignored_labels"),
        r"1 of 4 examples have label -100 \(PyTorch's ignore_index\)",
    ),
    Case(
        "device-without-float64",
        [ANALYSIS, "{ws}/good.pt", "--samples", "8", "--device", "mps", "--out", "out.h5"],
        r"--device mps: Apple's MPS has no float64",
    ),
    Case(
        "output-kind-is-a-dataset",
        analysis("{ws}/good.pt", out="{ws}/odd.h5"),
        r"holds 'hessian' as a dataset",
    ),
]


USER_CODE = textwrap.dedent(
    """
    import torch

    def raises():
        raise ValueError("width must be even")

    def not_a_module():
        return "resnet"

    def digits_mlp():
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))

    def rgb_data():
        return torch.zeros(4, 3, 32, 32), torch.arange(4)

    def ignored_labels():
        return torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, -100, 2])
    """
)


def build_workspace(ws: Path) -> None:
    """Every input file of the corpus, written once."""
    import h5py
    import numpy as np
    import torch

    from landscape import store
    from landscape.loading.checkpoint import FORMAT, save_checkpoint
    from landscape.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn-bn", (1, 8, 8), 10)
    state = model.state_dict()
    save_checkpoint(
        ws / "good.pt",
        {
            "format": FORMAT,
            "version": 1,
            "arch": "cnn-bn",
            "model": state,
            "epoch": 1,
            "phase": "sgd",
            "config": {"dataset": "digits"},
            "history": [],
        },
    )
    torch.save(state, ws / "raw.pt")
    torch.save(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).state_dict(),
        ws / "flat.pt",
    )
    torch.save(build_model("cnn-bn", (1, 8, 8), 3).state_dict(), ws / "three_classes.pt")
    for name, value in (("nan", float("nan")), ("inf", float("inf"))):
        bad = {k: v.clone() for k, v in state.items()}
        next(v for v in bad.values() if v.is_floating_point()).view(-1)[0] = value
        torch.save(bad, ws / f"{name}.pt")
    data = (ws / "raw.pt").read_bytes()
    (ws / "truncated.pt").write_bytes(data[: len(data) // 2])
    (ws / "empty.pt").write_bytes(b"")
    (ws / "random.bin").write_bytes(bytes((i * 97 + 13) % 256 for i in range(4096)))
    (ws / "notes.txt").write_text("these are my notes = [\n")
    (ws / "precious.txt").write_text("do not overwrite me\n")
    (ws / "a_folder").mkdir()
    (ws / "read_only").mkdir()
    (ws / "read_only").chmod(0o555)
    (ws / "locked.pt").write_bytes(data)
    (ws / "locked.pt").chmod(0)
    (ws / "user_code.py").write_text(USER_CODE)
    with h5py.File(ws / "result.h5", "w") as f:
        f.attrs["schema_version"] = 1
    with h5py.File(ws / "odd.h5", "w") as f:
        f["hessian"] = [1.0, 2.0]
    with store.transaction(ws / "flipped.h5") as f:
        store.write_dataset(store.replace_group(f, "hessian/a"), "trace", 18.77)
    flipped = (
        (ws / "flipped.h5")
        .read_bytes()
        .replace(np.float64(18.77).tobytes(), np.float64(26.77).tobytes())
    )
    (ws / "flipped.h5").write_bytes(flipped)
    torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2)).save(str(ws / "scripted.pt"))

    write_files_naming_code(ws, state)

    class Evil:
        def __reduce__(self):
            return (open, (str(ws / "pwned"), "w"))

    torch.save({"state_dict": state, "extra": Evil()}, ws / "evil.pt")


def write_files_naming_code(ws: Path, state: dict) -> None:
    """Data-only files (no pickled code) that name code or loading options for their model."""
    import json

    from safetensors.torch import save_file

    from landscape.loading.checkpoint import FORMAT, save_checkpoint

    command = f"touch {ws / 'pwned_by_command'}"
    save_checkpoint(
        ws / "recorded_command.pt",
        {
            "format": FORMAT,
            "arch": "subprocess:getoutput",
            "model": state,
            "config": {"dataset": "digits", "arch_kwargs": {"cmd": command}},
        },
    )
    code = ws / "recorded_arch.py"
    code.write_text(f"open({str(ws / 'pwned_by_import')!r}, 'w')\ndef build():\n    pass\n")
    save_file(state, str(ws / "recorded_code.safetensors"), metadata={"arch": f"{code}:build"})
    write_inflating_zip(ws / "raw.pt", ws / "inflating.pt", 1 << 40)
    folder = ws / "timm_folder"
    folder.mkdir()
    config = {"architecture": "resnet18", "model_args": {"checkpoint_path": str(ws / "raw.pt")}}
    (folder / "config.json").write_text(json.dumps(config))
    save_file(state, str(folder / "model.safetensors"))


def write_inflating_zip(source: Path, target: Path, declared: int) -> None:
    """``source`` (a torch.save zip) deflated, its tensor entry declaring ``declared`` bytes
    in the archive's directory: a file of a kilobyte that claims a terabyte of contents."""
    import zipfile

    with (
        zipfile.ZipFile(source) as old,
        zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as new,
    ):
        for entry in old.infolist():
            new.writestr(entry.filename, old.read(entry.filename))
        next(e for e in new.filelist if "/data/" in e.filename).file_size = declared


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its content hash (unreadable files: their mode)."""
    prints = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            try:
                prints[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                prints[str(path)] = oct(path.stat().st_mode)
    return prints


def run_case(case: Case, ws: Path, workdir: Path) -> subprocess.CompletedProcess:
    workdir.mkdir()
    argv = [a.replace("{ws}", str(ws)) for a in case.argv]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "landscape", *argv],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def selected_cases(session: pytest.Session) -> list[Case]:
    return [
        item.callspec.params["case"]
        for item in session.items
        if getattr(item, "originalname", "") == "test_bad_input_is_one_clear_error"
    ]


@pytest.fixture(scope="module")
def corpus(request, tmp_path_factory):
    """Run every selected, runnable case once, in parallel; results by case id."""
    ws = tmp_path_factory.mktemp("inputs")
    build_workspace(ws)
    before = fingerprint(ws)
    runnable = [c for c in selected_cases(request.session) if not c.skip_if]
    workers = max(2, min(4, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            c.id: pool.submit(run_case, c, ws, ws.parent / f"run-{ws.name}-{c.id}")
            for c in runnable
        }
        results = {cid: future.result() for cid, future in futures.items()}
    yield ws, before, results
    (ws / "read_only").chmod(0o755)
    (ws / "locked.pt").chmod(0o644)


PARAMS = [pytest.param(c, id=c.id, marks=() if c.fast else pytest.mark.slow) for c in CASES]


@pytest.mark.parametrize("case", PARAMS)
def test_bad_input_is_one_clear_error(case, corpus):
    if case.skip_if:
        pytest.skip(case.skip_if)
    ws, before, results = corpus
    done = results[case.id]
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr
    assert re.search(case.expect, errors[0]), errors[0]
    assert done.stdout == "", "no result on stdout for a failed command"
    workdir = ws.parent / f"run-{ws.name}-{case.id}"
    assert list(workdir.rglob("*")) == [], "nothing written in the working folder"
    assert fingerprint(ws) == before, "input files untouched, no files added"
    for path in case.absent:
        assert not Path(path.replace("{ws}", str(ws))).exists()


def test_corpus_covers_at_least_twenty_kinds():
    assert len({c.id for c in CASES}) == len(CASES) >= 20
    assert any(c.fast for c in CASES) and any(not c.fast for c in CASES)
