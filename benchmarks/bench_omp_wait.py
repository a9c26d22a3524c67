"""Which OpenMP wait policy is fastest, idle and under load, for the work landscape does.

torch 2.14.1's pip wheel ships GNU libgomp (``torch/lib/libgomp.so.1``; ATen's parallel
backend is OpenMP, and MKL and oneDNN thread through the same runtime). libgomp reads, once,
when torch loads it: ``OMP_WAIT_POLICY`` (``ACTIVE``: spin for ever; ``PASSIVE``: sleep at
once) and ``GOMP_SPINCOUNT`` (how many spin iterations a waiting thread makes before it sleeps;
unset: 300,000, or 1,000 when there are more threads than CPUs). ``KMP_BLOCKTIME`` is Intel's
libiomp5 and has no effect here.

Every policy runs in a fresh process that differs from the others only in its environment:

    unset       nothing set (libgomp: spin 300,000 iterations, then sleep)
    PASSIVE     OMP_WAIT_POLICY=PASSIVE          (what landscape set before issue #29)
    ACTIVE      OMP_WAIT_POLICY=ACTIVE
    spin10k     GOMP_SPINCOUNT=10000             (bounded spinning)
    spin100k    GOMP_SPINCOUNT=100000
    spin1M      GOMP_SPINCOUNT=1000000
    landscape   ``import landscape`` before torch: the rule of landscape.openmp_policy,
                chosen at start from the load and the thread count

Workloads, each timed as the wall-clock total of a fixed number of repetitions after one
warm-up (so that what other processes take is in the figure, as it is in a real job):

    digits cnn-bn (1,000 8x8 inputs), CIFAR ResNet-20 (64 3x32x32 inputs), torchvision
    EfficientNet-B0 (8 3x64x64 inputs, 10 classes), a 2-layer GPT-2 (transformers config,
    d=128, 4 x 64 tokens); random weights; for each: eval forwards, Hessian-vector products
    (landscape.curvature.HessianOperator) and SGD training steps.

Columns: the CPU as found (run it under an exclusive lock so that it is idle), and with 1 and
2 busy-looping processes beside it (``--load idle|busy1|busy2``; default all three). The table
gives each policy's time summed over the workloads and, per column, its ratio to the best.

    flock -x /tmp/landscape-cpu.lock python benchmarks/bench_omp_wait.py --quick --load idle
    python benchmarks/bench_omp_wait.py --repeats 3          # median of 3 processes each
    # in parts: each part appends its processes, then one table of them all
    python benchmarks/bench_omp_wait.py --quick --load busy1 --policies unset,PASSIVE \
        --record omp.jsonl
    python benchmarks/bench_omp_wait.py --table omp.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

POLICIES: dict[str, dict[str, str]] = {
    "unset": {},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
    "spin10k": {"GOMP_SPINCOUNT": "10000"},
    "spin100k": {"GOMP_SPINCOUNT": "100000"},
    "spin1M": {"GOMP_SPINCOUNT": "1000000"},
    "landscape": {},
}
LOADS = {"idle": 0, "busy1": 1, "busy2": 2}

# The child: builds the models, warms each workload up once, then times it.
JOB = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
policy, quick = sys.argv[1], sys.argv[2] == "1"
if policy == "landscape":
    import landscape  # before torch: chooses the wait policy
import torch
import torch.nn.functional as F
import landscape
from landscape.curvature import HessianOperator
from landscape.models import build_model

def sequence_loss(logits, targets):
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

class LogitsOnly(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
    def forward(self, x):
        return self.model(input_ids=x).logits

def models():
    torch.manual_seed(0)
    out = {}
    out["digits cnn-bn"] = (build_model("cnn-bn", (1, 8, 8), 10), torch.randn(1000, 1, 8, 8),
                            torch.randint(0, 10, (1000,)), F.cross_entropy)
    out["resnet20"] = (build_model("resnet20", (3, 32, 32), 10), torch.randn(64, 3, 32, 32),
                       torch.randint(0, 10, (64,)), F.cross_entropy)
    import torchvision
    out["efficientnet-b0"] = (torchvision.models.efficientnet_b0(num_classes=10),
                              torch.randn(8, 3, 64, 64), torch.randint(0, 10, (8,)),
                              F.cross_entropy)
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(n_layer=2, n_embd=128, n_head=4, vocab_size=1000, n_positions=64,
                        attn_implementation="eager")
    out["gpt2 2x128"] = (LogitsOnly(GPT2LMHeadModel(config)), torch.randint(0, 1000, (4, 64)),
                         torch.randint(0, 1000, (4, 64)), sequence_loss)
    return out

REPS = {"forward": 4, "hvp": 2, "train": 3} if quick else {"forward": 12, "hvp": 6, "train": 8}

def timed(fn, reps):
    fn()
    started = time.perf_counter()
    for _ in range(reps):
        fn()
    return time.perf_counter() - started

result = {"threads": torch.get_num_threads(),
          "chosen": landscape.openmp_choice().describe() if policy == "landscape" else None,
          "seconds": {}}
for name, (model, x, y, loss_fn) in models().items():
    model.eval()
    def forward():
        with torch.no_grad():
            model(x)
    result["seconds"][f"{name} forward"] = timed(forward, REPS["forward"])
    with HessianOperator(model, loss_fn, x, y, batch_size=x.shape[0]) as op:
        v = torch.randn(op.dim)
        result["seconds"][f"{name} hvp"] = timed(lambda: op.matvec(v), REPS["hvp"])
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    result["seconds"][f"{name} train"] = timed(step, REPS["train"])
print(json.dumps(result))
"""

SPIN = "while True:\n    pass\n"


def run_job(policy: str, quick: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in OPENMP_VARIABLES}
    env.update(POLICIES[policy])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", JOB, policy, "1" if quick else "0"],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"{policy}: child failed\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(
    policies: list[str], repeats: int, load: str, quick: bool, record: Path | None
) -> tuple[dict, dict]:
    """Round-robin over the policies so that each sees the same load; the spinners run
    through the whole column. Each finished process is appended to ``record`` (JSON lines)
    at once, so that a long run can be made in parts (``--table`` reads them back)."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(LOADS[load])]
    try:
        if spinners:
            time.sleep(1.0)
        runs: dict[str, list[dict]] = {p: [] for p in policies}
        for _ in range(repeats):
            for policy in policies:
                runs[policy].append(run_job(policy, quick))
                if record is not None:
                    line = {"load": load, "policy": policy, "loadavg": os.getloadavg()[0]}
                    with record.open("a") as f:
                        f.write(json.dumps({**line, **runs[policy][-1]}) + "\n")
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()
    medians = {
        p: {w: statistics.median(r["seconds"][w] for r in rs) for w in rs[0]["seconds"]}
        for p, rs in runs.items()
    }
    chosen = {p: rs[0]["chosen"] for p, rs in runs.items() if rs[0]["chosen"]}
    return medians, chosen


def read_record(path: Path) -> tuple[dict, dict]:
    """Medians per load and policy, and the rule's choices, from a ``--record`` file."""
    runs: dict[str, dict[str, list[dict]]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        runs.setdefault(row["load"], {}).setdefault(row["policy"], []).append(row)
    medians = {
        load: {
            p: {w: statistics.median(r["seconds"][w] for r in rs) for w in rs[0]["seconds"]}
            for p, rs in by_policy.items()
        }
        for load, by_policy in runs.items()
    }
    chosen = {
        load: {p: rs[0]["chosen"] for p, rs in by_policy.items() if rs[0].get("chosen")}
        for load, by_policy in runs.items()
    }
    return medians, chosen


def ratio_table(columns: dict[str, dict[str, float]], policies: list[str]) -> list[str]:
    """Rows of '| policy | s (ratio) | ...' with each column's ratio to its best."""
    lines = ["| policy | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    best = {c: min(v.values()) for c, v in columns.items()}
    for p in policies:
        cells = [
            f"{columns[c][p]:.2f} s ({columns[c][p] / best[c]:.2f})" if p in columns[c] else "--"
            for c in columns
        ]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="processes per policy (median)")
    parser.add_argument("--quick", action="store_true", help="one process each, fewer reps")
    parser.add_argument("--load", choices=list(LOADS), action="append", help="column(s)")
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated")
    parser.add_argument("--record", type=Path, help="append each process's times here (JSON lines)")
    parser.add_argument("--table", type=Path, help="only print the table of a --record file")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    policies = args.policies.split(",")
    loads = args.load or list(LOADS)
    started_load = os.getloadavg()
    if args.table:
        per_load, chosen = read_record(args.table)
        loads = [load for load in LOADS if load in per_load]
        policies = [p for p in POLICIES if any(p in per_load[load] for load in loads)]
    else:
        per_load, chosen = {}, {}
        for load in loads:
            per_load[load], chosen[load] = measure(policies, repeats, load, args.quick, args.record)
    workloads = list(next(iter(per_load[loads[0]].values())))
    print(
        f"{os.cpu_count()} cores, torch threads = cores; load average at start "
        f"{started_load[0]:.2f}; {'quick' if args.quick else f'median of {repeats}'}"
    )
    for load, how in chosen.items():
        if how:
            print(f"  landscape's rule under {load}: {how['landscape']}")
    total = {
        load: {p: sum(per_load[load][p].values()) for p in policies if p in per_load[load]}
        for load in loads
    }
    print("\nall workloads, summed (ratio to the best policy of the column):\n")
    print("\n".join(ratio_table(total, policies)))
    for load in loads:
        print(f"\n{load}: per workload, ratio to the best policy\n")
        print("| workload | " + " | ".join(policies) + " |")
        print("|---|" + "---:|" * len(policies))
        for w in workloads:
            there = [p for p in policies if p in per_load[load]]
            best = min(per_load[load][p][w] for p in there)
            cells = [f"{per_load[load][p][w] / best:.2f}" if p in there else "--" for p in policies]
            print(f"| {w} ({best:.2f} s) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
