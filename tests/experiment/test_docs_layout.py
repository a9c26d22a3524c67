"""docs/experiment.md and the README show the command's own output: their tables and verdict
lines have the layout that rendering a stored result gives
(landscape.experiment.late_sam.render)."""

import math
import re
from pathlib import Path

import h5py

from landscape.experiment.late_sam import render
from landscape.experiment.rules import RULES
from landscape.experiment.summary import paired_columns
from landscape.results.experiment import ExperimentResult

ROOT = Path(__file__).parents[2]
DOCS = (ROOT / "docs" / "experiment.md", ROOT / "README.md")
MARKER = "<!-- printed by landscape experiment late-sam -->"
ARMS = [  # arm_label, arm, t0, t1, λ1 of seed 0
    ("sgd", "sgd", math.nan, math.nan, 10.0),
    ("late-sam t0=35", "late-sam", 35.0, math.nan, 7.0),
    ("full-sam", "full-sam", 0.0, math.nan, 5.0),
    ("sam-sgd t1=20", "sam-sgd", 0.0, 20.0, 9.0),
]


def stored_rows(tmp_path):
    """A small experiment's runs, written as the command writes them and read back."""
    rows = []
    for seed in (0, 1, 2):
        for label, arm, t0, t1, lam in ARMS:
            row = {"label": f"{label}-s{seed}", "arm": arm, "arm_label": label, "seed": seed,
                   "t0": t0, "t1": t1, "sam_steps": 100.0, "test_acc": 0.9 + 0.01 * seed,
                   "test_loss": 0.3, "lambda1": lam + seed, "trace": 3 * lam + seed,
                   "worst_case": lam / 100}  # fmt: skip
            row.update({f"worst_case_rho{r:g}": lam * r for r in (0.025, 0.05, 0.1)})
            if arm in ("late-sam", "full-sam"):
                row["barrier_train_error"] = 0.001 * seed
            rows.append(row)
    for row, paired in zip(rows, paired_columns(rows)):
        row.update(paired)
    stored = ExperimentResult("late-sam", {}, "mnist1d", "cnn1d", 40, 0.05, [0, 1, 2], "", rows)
    with h5py.File(tmp_path / "r.h5", "w") as f:
        stored.write(f.create_group("experiment/late-sam"))
        return ExperimentResult.read(f["experiment/late-sam"]).runs


def printed_blocks(doc: Path | None = None) -> list[list[str]]:
    """The fenced blocks of ``doc`` (default: every page of DOCS) that follow the marker."""
    blocks = []
    for path in [doc] if doc else DOCS:
        found = re.findall(re.escape(MARKER) + r"\s*```text\n(.*?)```", path.read_text(), re.S)
        blocks += [block.splitlines() for block in found]
    return blocks


def test_the_docs_hold_printed_output():
    assert all(printed_blocks(doc) for doc in DOCS)


def test_the_docs_tables_and_verdicts_have_the_layout_the_command_prints(tmp_path):
    escape = {"name": "sgd-s0-epoch035", "steps": 10, "lr": 0.01, "bn_mode": "train",
              "weight_decay": 5e-4, "diverged_at": math.nan, "growth_rate": 0.1,
              "fit_advantage": 0.1, "loss_start": 0.1, "loss_end": 0.05, "distance": 0.1,
              "eig_start": 1.0, "eig_end": 0.5}  # fmt: skip
    _, _, text = render(stored_rows(tmp_path), [escape], 40)
    rendered = text.splitlines()
    for printed in printed_blocks():
        check_layout(printed, rendered)


def check_layout(printed: list[str], rendered: list[str]) -> None:
    headers = {line for line in rendered if line.startswith("| arm |")}
    fixed = [line for line in rendered if line and not line.startswith(("|", " ", "escape "))]
    header = None
    for line in printed:
        if line.startswith("| arm |"):
            assert line in headers, line
            header = line
        elif line.startswith("|"):  # a row (or the separator) has the header's cells
            assert header is not None and line.count("|") == header.count("|"), line
        else:
            header = None
    # A whole printout holds every line that names what follows ("Verdicts (rules: ...):");
    # an excerpt (the README's verdicts) begins with one of them.
    whole = printed[0].startswith("| arm |")
    for line in fixed if whole else []:
        prefix = line.split(":")[0].split("(")[0]
        assert any(p.startswith(prefix) for p in printed), line
    if not whole:
        assert printed[0] in fixed, printed[0]
    verdicts = [line for line in printed if re.match(r"  [A-Z ]+  \S", line)]
    pattern = r"  (REPRODUCED|PARTLY|NOT REPRODUCED|NOT RESOLVED) +{} \[{}\]: \S"
    assert len(verdicts) == len(RULES)
    for line, rule in zip(verdicts, RULES):
        assert re.match(pattern.format(re.escape(rule.claim), rule.name), line), line


def test_the_docs_state_the_rules_as_the_code_does():
    from landscape.experiment.rules import rules_text

    assert "```text\n" + rules_text() + "\n```" in DOCS[0].read_text()
