"""`torchrun -m landscape train` on 2 Gloo ranks (CPU): DistributedDataParallel with the global
batch split over the ranks, SAM's global and per-rank ascent, one writer, resume after SIGKILL.

Every process runs under a timeout, so a hang fails the test instead of blocking the suite.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from landscape.cli import main

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 180
BATCH = 64  # digits: 1437 training examples, so the last global batch (29) splits 14 / 15
# Epoch 1 SGD, epoch 2 SAM (lr 0.01 after the default milestone); float64 for tight tolerances.
RUN = ["--arch", "mlp", "--epochs", "2", "--sam-start", "1", "--batch-size", str(BATCH)]
RUN += ["--dtype", "float64", "--threads", "1", "--rho", "0.05"]
SYNC_BN = [*RUN, "--arch", "cnn-bn", "--sync-bn"]  # after RUN's --arch mlp: this one wins

pytestmark = pytest.mark.slow


def environment() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    env["LANDSCAPE_COLLECTIVE_TIMEOUT"] = "60"
    return env


def torchrun() -> list[str]:
    """torchrun with a free port of its own (``--standalone``), 2 ranks, this interpreter."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def landscape_2(out: Path, *args: str) -> subprocess.CompletedProcess:
    command = [*torchrun(), "-m", "landscape", "train", "--out", str(out), *args]
    return subprocess.run(
        command, env=environment(), capture_output=True, text=True, timeout=TIMEOUT_S
    )


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process with the global batch (MLP, and cnn-bn), 2 ranks with global ascent (MLP, and
    cnn-bn with --sync-bn), 2 ranks with per-rank ascent (MLP)."""
    out = tmp_path_factory.mktemp("ddp")
    bn = ["--arch", "cnn-bn"]
    threads = torch.get_num_threads()
    try:  # in this process: a process start less
        assert main(["-q", "train", "--out", str(out), *RUN, "--run", "one"]) == 0
        assert main(["-q", "train", "--out", str(out), *RUN, *bn, "--run", "one-bn"]) == 0
    finally:
        torch.set_num_threads(threads)
    done = {
        "global": landscape_2(out, *RUN, "--run-name", "global"),
        "sync-bn": landscape_2(out, *SYNC_BN, "--run-name", "sync-bn"),
        "per-rank": landscape_2(out, *RUN, "--run-name", "per-rank", "--sam-ascent", "per-rank"),
    }
    for name, result in done.items():
        assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
    return out, done


@pytest.mark.parametrize("checkpoint", ["epoch-001-sgd.pt", "epoch-002-sam.pt"])
@pytest.mark.parametrize(("single", "ranks"), [("one", "global"), ("one-bn", "sync-bn")])
def test_two_ranks_with_global_ascent_equal_one_process_with_the_whole_batch(
    runs, checkpoint, single, ranks
):
    """SGD and SAM; with --sync-bn also BatchNorm (batch statistics and running ones)."""
    out, _ = runs
    one, two = load(out / single / checkpoint), load(out / ranks / checkpoint)
    assert one["model"].keys() == two["model"].keys()
    for key, weight in one["model"].items():
        torch.testing.assert_close(two["model"][key], weight, rtol=1e-10, atol=1e-12)
    assert two["config"]["world_size"] == 2  # the ranks shared the batches
    assert two["history"][-1]["train_loss"] == pytest.approx(
        one["history"][-1]["train_loss"], rel=1e-10
    )


def test_the_checkpoints_config_records_the_world_size_and_backend(runs):
    out, _ = runs
    for run, (world, backend) in {"one": (1, "none"), "global": (2, "gloo")}.items():
        config = load(out / run / "epoch-002-sam.pt")["config"]
        assert (config["world_size"], config["backend"]) == (world, backend)
        stored = json.loads((out / run / "config.json").read_text())
        assert (stored["world_size"], stored["backend"]) == (world, backend)


def test_only_rank_0_writes_and_prints(runs):
    out, done = runs
    result = done["global"]
    assert result.stdout.count("run ") == 1 and result.stdout.count("metrics: ") == 1
    assert result.stderr.count("epoch 2/2 sam lr") == 1  # rank 0 logs, rank 1 does not
    assert len((out / "global" / "metrics.jsonl").read_text().splitlines()) == 2  # no duplicates
    assert sorted(p.name for p in (out / "global").iterdir()) == [
        "config.json",
        "epoch-001-sgd.pt",
        "epoch-002-sam.pt",
        "metrics.jsonl",
    ]


def per_rank_sam_epoch(start: dict, ranks: int = 2) -> dict[str, torch.Tensor]:
    """Epoch 2 by hand from the epoch-1 checkpoint: SAM with each rank's own ascent.

    For every global batch (order: the checkpoint's shuffle generator), rank r takes its
    contiguous share S_r, climbs to w + e_r with e_r = rho g_r / ||g_r|| (g_r the gradient of
    its mean loss), and the descent gradient is sum_r |S_r| / |S| grad L_r(w + e_r); then SGD
    with momentum and weight decay, written out here.
    """
    from landscape.data import load_dataset
    from landscape.models import build_model

    config = start["config"]
    data = load_dataset("digits")
    x, y = data.train_x.double(), data.train_y
    model = build_model("mlp", data.input_shape, data.num_classes).double()
    w = {k: v.clone() for k, v in start["model"].items()}
    names = [name for name, _ in model.named_parameters()]
    momentum = {names[i]: s["momentum_buffer"] for i, s in start["optimizer"]["state"].items()}
    lr = config["lr"] * config["gamma"]  # epoch 2 is past the milestone
    rho, wd, mu = config["rho"], config["weight_decay"], config["momentum"]

    def gradient(params, xb, yb):
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        loss = F.cross_entropy(functional_call(model, params, (xb,)), yb)
        grads = torch.autograd.grad(loss, [params[n] for n in names])
        return dict(zip(names, grads))

    shuffle = torch.Generator()
    shuffle.set_state(start["rng"]["generators"]["shuffle"])
    order = torch.randperm(x.shape[0], generator=shuffle)
    for begin in range(0, x.shape[0], BATCH):
        index = order[begin : begin + BATCH]
        m = len(index)
        descent = {n: torch.zeros_like(w[n]) for n in names}
        for r in range(ranks):
            share = index[m * r // ranks : m * (r + 1) // ranks]
            g = gradient(w, x[share], y[share])
            norm = torch.sqrt(sum((g[n] ** 2).sum() for n in names))
            climbed = dict(w)
            climbed.update({n: w[n] + rho * g[n] / (norm + 1e-12) for n in names})
            h = gradient(climbed, x[share], y[share])
            for n in names:
                descent[n] += h[n] * len(share) / m
        for n in names:
            d = descent[n] + wd * w[n]
            momentum[n] = mu * momentum[n] + d
            w[n] = w[n] - lr * momentum[n]
    return w


def test_per_rank_ascent_follows_the_per_rank_rule_and_differs_from_the_global_one(runs):
    out, _ = runs
    start = load(out / "per-rank" / "epoch-001-sgd.pt")
    expected = per_rank_sam_epoch(start)
    got = load(out / "per-rank" / "epoch-002-sam.pt")["model"]
    global_ascent = load(out / "global" / "epoch-002-sam.pt")["model"]
    for key, weight in expected.items():
        torch.testing.assert_close(got[key], weight, rtol=1e-10, atol=1e-12)
    assert max((got[k] - global_ascent[k]).abs().max().item() for k in got) > 1e-4


def ranks_of(marker: str) -> dict[int, int]:
    """``{rank: pid}`` of the worker processes whose environment holds ``marker`` (through
    /proc: no psutil needed)."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            env = set((proc / "environ").read_bytes().split(b"\0"))
        except (OSError, ValueError):
            continue
        if f"RUN_MARKER={marker}".encode() in env:
            ranks = [int(v.split(b"=", 1)[1]) for v in env if v.startswith(b"RANK=")]
            if ranks:
                found[ranks[0]] = int(proc.name)
    return found


def test_a_sigkilled_rank_and_the_same_command_again_end_bit_identical(tmp_path, runs):
    """The --sync-bn run of ``runs`` again, rank 1 killed in epoch 2 (SAM), then rerun."""
    victim = 1  # not the writer: rank 0 is stopped by torchrun while it waits on rank 1
    command = [*torchrun(), "-m", "landscape", "train", "--out", str(tmp_path), *SYNC_BN]
    command += ["--run-name", "sync-bn"]
    run_dir = tmp_path / "sync-bn"
    env = dict(environment(), RUN_MARKER=str(tmp_path))
    launcher = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not (run_dir / "epoch-001-sgd.pt").exists() and launcher.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
        ranks = ranks_of(str(tmp_path))
        assert victim in ranks, "the run ended before a rank could be killed"
        os.kill(ranks[victim], signal.SIGKILL)
        launcher.wait(timeout=TIMEOUT_S)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert launcher.returncode != 0
    assert not (run_dir / "epoch-002-sam.pt").exists(), "the kill came too late to test a resume"

    result = subprocess.run(
        command, env=environment(), capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr[-2000:]
    resumed = load(run_dir / "epoch-002-sam.pt")
    whole = load(runs[0] / "sync-bn" / "epoch-002-sam.pt")
    assert resumed["config"]["world_size"] == 2
    for key, tensor in whole["model"].items():
        assert torch.equal(resumed["model"][key], tensor), key
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in whole["history"]]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed["history"]] == strip


def test_a_bad_input_on_two_ranks_is_one_error_line_per_rank_and_writes_nothing(tmp_path):
    result = landscape_2(tmp_path, "--arch", "mlp", "--epochs", "1", "--batch-size", "63")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("landscape: error:")]
    assert len(errors) == 2, result.stderr[-2000:]
    assert all("--batch-size 63 is the global batch" in line for line in errors)
    assert "use e.g. 62 or 64" in errors[0]
    assert list(tmp_path.iterdir()) == []
