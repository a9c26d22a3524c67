"""The file-format contract lives in the repository, and the code points at it."""

import re
from pathlib import Path

import h5py
import pytest
import torch

from landscape import store
from landscape.cli import main
from landscape.loading import checkpoint
from landscape.models import build_model

ROOT = Path(__file__).resolve().parents[1]
FORMAT_DOC = ROOT / "docs" / "file-format.md"


def _texts():
    for folder in ("landscape", "tests", "docs", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".md") and path != Path(__file__).resolve():
                yield path, path.read_text(encoding="utf-8")
    yield ROOT / "README.md", (ROOT / "README.md").read_text(encoding="utf-8")


def test_nothing_cites_a_design_note_or_a_path_outside_the_repository():
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path, text in _texts()
        for match in re.finditer(r"DESIGN\.md|/work/[\w./-]+", text)
    ]
    assert offenders == []


@pytest.mark.usefixtures("one_thread")
def test_every_name_a_full_hessian_run_writes_is_in_the_file_format_doc(tmp_path):
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10)
    ckpt = tmp_path / "epoch-001-sgd.pt"
    checkpoint.save_checkpoint(
        ckpt,
        {
            "format": checkpoint.FORMAT,
            "version": checkpoint.VERSION,
            "arch": "mlp",
            "model": model.state_dict(),
            "epoch": 1,
            "phase": "sgd",
            "config": {"dataset": "digits"},
            "history": [],
        },
    )
    out = tmp_path / "h.h5"
    assert (
        main(
            [
                "hessian",
                str(ckpt),
                "--top-k",
                "2",
                "--bottom-k",
                "1",
                "--eigenvectors",
                "--trace",
                "--trace-rel-stderr",
                "0.3",
                "--density",
                "--density-runs",
                "1",
                "--density-steps",
                "5",
                "--blocks",
                "layer",
                "--samples",
                "32",
                "--tol",
                "1e-2",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = re.sub(r"```.*?```", "", FORMAT_DOC.read_text(encoding="utf-8"), flags=re.S)
    documented = set(re.findall(r"`([^`]+)`", text))
    documented |= {part for name in documented for part in re.split(r"[/,\s]+", name)}
    names = set()
    with h5py.File(out) as f:
        names |= set(f.attrs)
        group = f[f"hessian/{store.checkpoint_label(ckpt)}"]
        names |= set(group.attrs)

        def visit(name, obj):
            if "eigenvectors/" in name:  # one dataset per parameter name
                return
            if re.fullmatch(r"blocks/[^/]+", name):  # one group per block, named by the model
                names.update(obj.attrs)
                return
            names.add(name.rsplit("/", 1)[-1])
            names.update(obj.attrs)

        group.visititems(visit)
    missing = sorted(n for n in names if n not in documented and f"{{{n}}}" not in documented)
    assert missing == []
