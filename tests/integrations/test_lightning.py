"""SharpnessCallback in a real (tiny) Lightning Trainer on CPU."""

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from landscape.curvature import hessian_eigenvalues

# the frameworks take 7-13 s of CPU to import and start
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]

X = torch.randn(64, 6, generator=torch.Generator().manual_seed(0))
Y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def pl():
    """Lightning, imported only when these (slow) tests run."""
    return pytest.importorskip("lightning.pytorch")


def _tiny(pl):
    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(
                nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Dropout(0.2), nn.Linear(8, 3)
            )

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.2, momentum=0.9)

    return Tiny()


def _fit(pl, callbacks, steps=6):
    torch.manual_seed(2)
    module = _tiny(pl)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X, Y), batch_size=16, shuffle=True
    )
    trainer = pl.Trainer(
        max_steps=steps,
        callbacks=callbacks,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)
    return module


def test_the_callback_tracks_lambda1_of_the_weights_at_each_step_and_leaves_them_unchanged(
    tmp_path, pl
):
    from landscape.integrations.lightning import SharpnessCallback

    callback = SharpnessCallback(
        X, Y, loss_fn=nn.functional.cross_entropy, every=3, out=tmp_path / "t.h5", name="tiny"
    )
    tracked = _fit(pl, [callback])
    plain = _fit(pl, [])
    for a, b in zip(tracked.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)
    with h5py.File(tmp_path / "t.h5") as f:
        steps, lambda1 = f["track/tiny/steps"][()], f["track/tiny/lambda1"][()]
        lr = f["track/tiny/lr"][()]
    assert list(steps) == [3, 6] and np.all(lr == 0.2)
    tracked.eval()  # the measurement's BatchNorm mode
    exact = hessian_eigenvalues(tracked, nn.functional.cross_entropy, X, Y, k=1, tol=1e-10)
    assert lambda1[-1] == pytest.approx(float(exact.eigenvalues[0]), rel=1e-4)
