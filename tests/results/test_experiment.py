"""experiment/<name>/: the experiment's tables, read back as written and as documented."""

import math

import h5py
import numpy as np

from landscape.results.experiment import ExperimentResult, read_table, write_table

RUNS = [
    {"label": "sgd-s0", "arm": "sgd", "seed": 0, "t0": math.nan, "done": True, "lambda1": 40.0},
    {"label": "late-sam-t1-s0", "arm": "late-sam", "seed": 0, "t0": 1.0, "done": True},
]
WRITTEN = ExperimentResult(
    kind="late-sam",
    config={"epochs": 2, "rho": 0.05},
    dataset="digits",
    arch="mlp",
    epochs=2,
    rho=0.05,
    seeds=[0, 1],
    summary_text="| arm | ... |",
    runs=[{**RUNS[0]}, {**RUNS[1], "lambda1": 30.0}],
    summary=[{"arm_label": "sgd", "n_seeds": 2, "lambda1_mean": 40.0, "lambda1_std": 1.0}],
    verdicts=[
        {
            "claim": "late SAM reaches full SAM's flatness",
            "rule": "flatness-gap",
            "verdict": "partly",
            "numbers": "λ1 gap closed 60 [20, 90] %",  # not ASCII: stored as UTF-8
        }
    ],
)


def test_an_experiment_reads_back_as_written(tmp_path):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        WRITTEN.write(f.create_group("experiment/late-sam"))
        assert ExperimentResult.read(f["experiment/late-sam"]) == WRITTEN


def test_a_column_some_rows_lack_is_empty_or_nan_there(tmp_path):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        write_table(f.create_group("t"), RUNS)
        assert f["t/label"].dtype.kind == "S"
        rows = read_table(f["t"])
    assert rows[0]["label"] == "sgd-s0" and rows[1]["label"] == "late-sam-t1-s0"
    assert rows[0]["lambda1"] == 40.0 and np.isnan(rows[1]["lambda1"])


def test_every_attribute_the_writer_produces_is_documented(tmp_path, format_doc):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        WRITTEN.write(f.create_group("experiment/late-sam"))
        names = set(f["experiment/late-sam"].attrs) | set(f["experiment/late-sam"])
    assert sorted(names - format_doc.names("experiment")) == []
