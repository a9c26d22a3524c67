"""MNIST-1D generated offline (landscape.mnist1d) and loaded as a dataset (landscape.data)."""

import numpy as np
import pytest
import torch

from landscape.data import load_dataset
from landscape.mnist1d import Recipe, generate, templates


@pytest.fixture(scope="module")
def mnist1d():
    return load_dataset("mnist1d")


def test_templates_are_ten_distinct_normalised_shapes_starting_at_zero():
    t = templates()
    assert t.shape == (10, 12)
    np.testing.assert_allclose(t[:, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose((t * 6).std(axis=1), 1.0, rtol=1e-12)
    distances = np.linalg.norm(t[:, None] - t[None], axis=-1) + np.eye(10)
    assert distances.min() > 0.1


def test_generation_is_deterministic_in_its_seed_and_balanced():
    x, y = generate(500, seed=3)
    x2, y2 = generate(500, seed=3)
    assert x.shape == (500, 40) and np.array_equal(x, x2) and np.array_equal(y, y2)
    assert np.bincount(y, minlength=10).tolist() == [50] * 10
    assert not np.array_equal(generate(500, seed=4)[0], x)


def test_without_noise_shift_or_shear_an_example_is_its_stretched_template():
    quiet = Recipe(
        padding=(0, 0),
        scale=0.0,
        max_shift=1,
        correlated_noise=0.0,
        iid_noise=0.0,
        shear=0.0,
        length=12,
    )
    x, y = generate(20, seed=0, recipe=quiet)
    np.testing.assert_allclose(x, templates()[y], atol=1e-12)


def test_the_dataset_has_thousands_of_test_sequences_standardised_with_train_statistics(mnist1d):
    assert mnist1d.train_x.shape == (4000, 1, 40) and mnist1d.test_x.shape == (4000, 1, 40)
    assert mnist1d.train_x.dtype == torch.float32 and mnist1d.input_shape == (1, 40)
    assert abs(float(mnist1d.train_x.mean())) < 1e-4 and float(
        mnist1d.train_x.std()
    ) == pytest.approx(1.0, rel=1e-3)
    assert mnist1d.num_classes == 10 and mnist1d.augmentation == "none"
    assert not torch.equal(mnist1d.train_x[:100], mnist1d.test_x[:100])


@pytest.mark.slow
def test_a_linear_model_is_far_from_solving_it(mnist1d):
    # The paper's point: a linear classifier gets about a third right, a small CNN over 90 %.
    from sklearn.linear_model import LogisticRegression

    X, Xt = mnist1d.train_x.flatten(1).numpy(), mnist1d.test_x.flatten(1).numpy()
    accuracy = (
        LogisticRegression(max_iter=1000)
        .fit(X, mnist1d.train_y.numpy())
        .score(Xt, mnist1d.test_y.numpy())
    )
    assert 0.2 < accuracy < 0.5
