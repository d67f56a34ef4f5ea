"""MNIST-1D is generated in-process exactly as Greydanus's procedure (checked against a per-example
reference written with scipy's ``interp1d`` and ``gaussian_filter``), standard sizes, deterministic."""

import numpy as np
import pytest

from plasticlab.data import load_dataset
from plasticlab.data.mnist1d import gaussian_smooth, generate, resample, templates


def reference(num: int, seed: int):
    """The published procedure, one example at a time with scipy (slow, independent of the vectorised code)."""
    from scipy.interpolate import interp1d
    from scipy.ndimage import gaussian_filter

    def interp(x, n):
        return interp1d(np.linspace(0, 1, len(x)), x, kind="linear")(np.linspace(0, 1, n))

    rs = np.random.RandomState(seed)
    xs, ys = [], []
    for c, tmpl in enumerate(templates()):
        for _ in range(num // 10):
            x = interp(np.concatenate([tmpl + 1e-8, np.zeros(36 + int(rs.rand() * 25))]), 72)
            x = x * (1 + 0.4 * (rs.rand() - 0.5))
            x = np.roll(x, rs.choice(48))
            zero = x == 0
            x = np.where(zero, gaussian_filter(0.25 * rs.randn(72), 2), x) + 0.02 * rs.randn(72)
            x = x - 0.75 * (rs.rand() - 0.5) * np.linspace(-0.5, 0.5, 72)
            xs.append(interp(x, 40))
            ys.append(c)
    order = rs.permutation(len(ys))
    x, y = np.stack(xs)[order], np.array(ys)[order]
    return (x - x.mean()) / x.std(), y


def test_matches_the_reference_procedure():
    a = generate(num_samples=300, seed=3)
    x, y = reference(300, 3)
    got = np.concatenate([a.x_train, a.x_test])[:, 0, 0, :]
    assert np.abs(got - x).max() < 1e-5  # float32 storage of float64 values within ~1e-15
    assert np.array_equal(np.concatenate([a.y_train, a.y_test]), y)


def test_standard_sizes_shapes_and_statistics():
    a = generate()
    assert a.x_train.shape == (4000, 1, 1, 40) and a.x_test.shape == (1000, 1, 1, 40) and a.classes == 10
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    counts = np.bincount(np.concatenate([a.y_train, a.y_test]))
    assert counts.tolist() == [500] * 10
    both = np.concatenate([a.x_train, a.x_test])
    assert abs(both.mean()) < 1e-5 and abs(both.std() - 1) < 1e-5  # standardised over all 5,000
    assert np.bincount(a.y_test, minlength=10).min() > 50


def test_deterministic_and_seeded():
    a, b, c = generate(200, seed=1), generate(200, seed=1), generate(200, seed=2)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_train, c.x_train)


def test_resample_and_smooth_against_numpy_and_scipy():
    from scipy.ndimage import gaussian_filter1d

    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, 72))
    n_src = np.array([48, 60, 72])
    got = resample(y, n_src, 40)
    for i, n in enumerate(n_src):
        assert np.allclose(got[i], np.interp(np.linspace(0, 1, 40), np.linspace(0, 1, n), y[i, :n]), atol=1e-12)
    assert np.allclose(gaussian_smooth(y, 2.0), gaussian_filter1d(y, 2.0, axis=1), atol=1e-12)


def test_loads_as_a_dataset_with_per_channel_normalisation():
    d = load_dataset("mnist1d", samples_per_class=20, seed=0)
    assert d.x_train.shape == (200, 1, 1, 40) and d.input_shape == (1, 1, 40)
    assert abs(d.x_train.mean().item()) < 1e-5 and abs(d.x_train.std().item() - 1) < 1e-3


@pytest.mark.parametrize("digit", range(10))
def test_templates_start_and_end_at_zero(digit):
    t = templates()[digit]
    assert t[0] == 0 and abs(t[-1]) < 1e-12
