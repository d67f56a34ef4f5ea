import torch

from plasticlab.data import load_dataset
from plasticlab.registry import FAMILIES
from plasticlab.tasks.blurred import blur, gaussian_kernel
from plasticlab.tasks.permuted import task_permutation
from plasticlab.tasks.random_labels import task_labels


def base():
    return load_dataset("digits", seed=0)


def test_permutation_is_a_pure_function_of_seed_and_task():
    assert torch.equal(task_permutation(0, 3, 64), task_permutation(0, 3, 64))
    assert not torch.equal(task_permutation(0, 3, 64), task_permutation(0, 4, 64))
    assert not torch.equal(task_permutation(0, 3, 64), task_permutation(1, 3, 64))
    assert torch.equal(task_permutation(0, 3, 64).sort().values, torch.arange(64))


def test_permuted_task_applies_the_same_permutation_to_train_and_test():
    b = base()
    fam = FAMILIES["permuted-pixels"]()
    t = fam.make_task(b, 0, 2)
    perm = task_permutation(0, 2, 64)
    assert torch.equal(t.x_train.flatten(1), b.x_train.flatten(1)[:, perm])
    assert torch.equal(t.x_test.flatten(1), b.x_test.flatten(1)[:, perm])
    assert torch.equal(t.y_train, b.y_train)
    again = fam.make_task(b, 0, 2)
    assert torch.equal(again.x_train, t.x_train)


def test_random_labels_keep_class_counts_and_change_per_task():
    b = base()
    fam = FAMILIES["random-labels"]()
    t1, t2 = fam.make_task(b, 0, 1), fam.make_task(b, 0, 2)
    assert torch.equal(torch.bincount(t1.y_train), torch.bincount(b.y_train))
    assert torch.equal(t1.y_train, task_labels(0, 1, b.y_train))
    assert (t1.y_train != t2.y_train).float().mean() > 0.5
    assert torch.equal(t1.x_train, b.x_train) and t1.x_test is None


def test_blur_kernel_and_identity():
    for s in (0.5, 1.0, 2.5):
        k = gaussian_kernel(s)
        assert abs(k.sum().item() - 1) < 1e-6 and k.numel() == 2 * int(-(-3 * s // 1)) + 1
        assert torch.allclose(k, k.flip(0))
    x = torch.randn(3, 2, 8, 8)
    assert torch.equal(blur(x, 0.0), x)
    const = torch.full((1, 1, 8, 8), 2.0)
    assert torch.allclose(blur(const, 1.5), const, atol=1e-6)  # a constant image stays constant
    y = blur(x, 1.0)
    assert y.var() < x.var()


def test_blurred_family_sigma_list():
    fam = FAMILIES["blurred"](count=3, sigmas=[2.0, 0.0])
    assert [fam.sigma(t) for t in range(3)] == [2.0, 0.0, 0.0]
    b = base()
    assert torch.equal(fam.make_task(b, 0, 1).x_train, b.x_train)
