"""Forgetting: accuracy on earlier tasks at a task end (``diagnostics.past_tasks``).

Definition (docs/diagnostics.md, *Forgetting*): at the end of task t, for the chosen earlier
tasks J ⊆ {0, …, t − 1},

    past_task_acc[j] = acc_j(θ_t)           test accuracy of task j, its train accuracy when the
                                            task has no test set (e.g. random-labels)
    mean_past_acc    = (1/|J|) Σ_{j ∈ J} past_task_acc[j]      (None at task 0)

with θ_t the model at the end of task t. J is every earlier task when t ≤ N, else N evenly spaced
ones that always include task 0 and t − 1 (N = 1: task 0 only). Source: the accuracy matrix
R[t, j] of continual learning (Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual
Learning", NeurIPS 2017; Chaudhry et al. 2018 define forgetting from it); plasticlab reports the
row R[t, J] and its mean, not the max-minus-current forgetting measure.

Task j is rebuilt with ``family.make_task(base, seed, j)`` (a pure function of (seed, j)) and
measured with ``family.measure``; the model is measured in eval mode and its mode restored.

Usage::

    past_task_indices(t=9, n=3)  # [0, 4, 8]
    past_task_acc(model, family, base, seed, t, n, eval_batch_size)
    # {"past_task_acc": {"0": 0.91, "4": 0.95, "8": 0.97}, "mean_past_acc": 0.943}
"""

from __future__ import annotations

from torch import nn


def past_task_indices(t: int, n: int) -> list[int]:
    """The earlier tasks measured at the end of task ``t`` with ``past_tasks = n``.

    All of 0 … t−1 when t ≤ n; else n evenly spaced ones, rounded half up, always including 0 and
    t − 1 (n = 1: [0]). Empty at t = 0 or n = 0.
    """
    if n <= 0 or t <= 0:
        return []
    if t <= n:
        return list(range(t))
    if n == 1:
        return [0]
    # why: integer round-half-up of i·(t−1)/(n−1); t > n makes the spacing ≥ 1, so no duplicates
    return [(2 * i * (t - 1) + (n - 1)) // (2 * (n - 1)) for i in range(n)]


def past_task_acc(model: nn.Module, family, base, seed: int, t: int, n: int, batch_size: int) -> dict:
    """``{"past_task_acc": {"j": acc}, "mean_past_acc": float | None}`` at the end of task ``t``.

    acc is the family's ``test_acc`` of task j, or its ``train_acc`` where the task has no test
    set. One ``family.measure`` (one host sync) per measured task.
    """
    was_training = model.training
    model.eval()
    accs: dict[str, float] = {}
    try:
        for j in past_task_indices(t, n):
            row = family.measure(model, family.make_task(base, seed, j), batch_size)
            acc = row.get("test_acc")
            accs[str(j)] = row["train_acc"] if acc is None else acc
    finally:
        model.train(was_training)
    return {"past_task_acc": accs, "mean_past_acc": sum(accs.values()) / len(accs) if accs else None}
