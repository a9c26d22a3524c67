"""SharpnessCallback in a real (tiny) Hugging Face Trainer on CPU."""

import h5py
import pytest
import torch

from landscape.curvature import hessian_eigenvalues

# the frameworks take 7-13 s of CPU to import and start
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]

IDS = torch.randint(0, 30, (32, 6), generator=torch.Generator().manual_seed(0))
LABELS = torch.randint(0, 2, (32,), generator=torch.Generator().manual_seed(1))


class Rows(torch.utils.data.Dataset):
    def __len__(self):
        return IDS.shape[0]

    def __getitem__(self, i):
        return {"input_ids": IDS[i], "labels": LABELS[i]}


@pytest.fixture(scope="module")
def transformers():
    """transformers (and accelerate, which its Trainer needs), imported only when these (slow)
    tests run."""
    pytest.importorskip("accelerate")
    return pytest.importorskip("transformers")


def _train(transformers, tmp_path, callbacks):
    config = transformers.BertConfig(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=8,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        max_steps=4,
        per_device_train_batch_size=8,
        learning_rate=0.05,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        seed=3,
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=Rows(), callbacks=callbacks
    )
    trainer.train()
    return model


def test_the_callback_tracks_lambda1_of_the_weights_at_each_step_and_leaves_them_unchanged(
    tmp_path, transformers
):
    from landscape.integrations.transformers import (
        KeywordInput,
        SharpnessCallback,
        logits_cross_entropy,
    )

    callback = SharpnessCallback(IDS, LABELS, every=2, out=tmp_path / "t.h5", name="bert")
    tracked = _train(transformers, tmp_path, [callback])
    plain = _train(transformers, tmp_path, [])
    for a, b in zip(tracked.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)
    with h5py.File(tmp_path / "t.h5") as f:
        assert list(f["track/bert/steps"][()]) == [2, 4]
        lambda1 = f["track/bert/lambda1"][-1]
        assert f["track/bert/lr"][()].size == 2
    tracked.eval()
    exact = hessian_eigenvalues(
        KeywordInput(tracked), logits_cross_entropy, IDS, LABELS, k=1, tol=1e-7
    )
    assert lambda1 == pytest.approx(float(exact.eigenvalues[0]), rel=1e-4)
