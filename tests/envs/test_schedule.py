import pytest

from plasticlab.config import EnvironmentConfig, TransitionConfig
from plasticlab.envs.schedule import alpha_grid, build_schedule, describe, dropped_levels_note, split_steps


def env(kind, E=4.0, k=2.0, delta=0.25, matched=True):
    return EnvironmentConfig(kind=kind, epochs_per_task=E, transition=TransitionConfig(length=k, step=delta),
                             compute_matched=matched)


def test_alpha_grid():
    assert alpha_grid(0.5) == [0.5]
    assert alpha_grid(0.25) == [0.25, 0.5, 0.75]
    assert alpha_grid(0.05) == pytest.approx([0.05 * j for j in range(1, 20)])
    assert len(alpha_grid(0.02)) == 49


def test_split_steps_sums_exactly():
    for total in (0, 1, 7, 100, 101):
        for parts in (1, 3, 19):
            s = split_steps(total, parts)
            assert sum(s) == total and max(s) - min(s) <= 1


@pytest.mark.parametrize("E, k, delta, spe",
                         [(4, 2, 0.25, 10), (80, 2, 0.5, 80), (3.5, 1.5, 0.05, 7), (1, 0.5, 0.1, 3)])
def test_gradual_and_abrupt_use_equal_steps(E, k, delta, spe):
    totals = set()
    for kind in ("abrupt", "input-interpolation", "output-interpolation", "task-sampling"):
        s = build_schedule(env(kind, E, k, delta), 5, spe)
        totals.add(s.total_steps)
        for t in range(5):  # every task gets (1+k)·E epochs of compute, to the step
            n = sum(p.steps for p in s.phases if p.task == t)
            assert n == round(E * spe) + round(k * E * spe)
    assert len(totals) == 1


def test_transition_phases_and_alpha_order():
    s = build_schedule(env("task-sampling", E=4, k=2, delta=0.25), 3, 10)
    kinds = [(p.task, p.kind, p.alpha, p.steps) for p in s.phases]
    assert kinds[0] == (0, "task", None, 120)
    assert kinds[1:5] == [(1, "transition", 0.25, 26), (1, "transition", 0.5, 27), (1, "transition", 0.75, 27),
                          (1, "task", None, 40)]
    assert s.phases[1].old == 0
    # phases tile the step range with no gap
    assert all(a.end == b.start for a, b in zip(s.phases, s.phases[1:], strict=False))


def test_not_compute_matched_abrupt_gets_E():
    s = build_schedule(env("abrupt", E=2, matched=False), 3, 5)
    assert [p.steps for p in s.phases] == [10, 10, 10]


def test_fractional_epochs_counted_in_steps():
    s = build_schedule(env("abrupt", E=0.5, k=0.0), 2, 7)
    assert [p.steps for p in s.phases] == [4, 4]


def test_tasks_of_different_sizes_get_their_own_epochs():
    s = build_schedule(env("abrupt", E=2.0, matched=False), 3, [5, 10, 7])
    assert [p.steps for p in s.phases] == [10, 20, 14] and [p.start for p in s.phases] == [0, 10, 30]
    assert s.epoch_steps == (5, 10, 7) and [s.epoch_length(t) for t in range(3)] == [5, 10, 7]
    same = build_schedule(env("task-sampling"), 3, [6, 6, 6])
    assert same == build_schedule(env("task-sampling"), 3, 6) and same.epoch_steps == ()
    assert same.epoch_length(2) == 6


def test_levels_without_steps_are_recorded_and_announced(capsys):
    """batch 61 on 500 images (S = 8), δ = 0.05, E = 1, k = 2: R = 16 steps for 19 levels, 3 get none."""
    env = EnvironmentConfig(kind="output-interpolation", epochs_per_task=1.0,
                            transition=TransitionConfig(length=2.0, step=0.05))
    s = build_schedule(env, 3, 8)
    expect = [a for a, n in zip(alpha_grid(0.05), split_steps(16, 19), strict=True) if n == 0]
    assert len(expect) == 3 and s.dropped == tuple((t, a) for t in (1, 2) for a in expect)
    kept = [p for p in s.phases if p.task == 1 and p.kind == "transition"]
    assert len(kept) == 16 and sum(p.steps for p in kept) == 16
    note = dropped_levels_note(s)
    assert note.startswith("environment.transition: the transition into task 1 (and into 1 more task) has 16 steps "
                           "for 19 α levels, so 3 levels get no step")
    assert describe(s).splitlines()[-1] == f"note: {note}"
    assert dropped_levels_note(build_schedule(env, 3, 10)) is None  # R = 20 ≥ 19 levels
    from plasticlab.api import resolve
    from plasticlab.engine import loop

    loop.setup(resolve(None, ["environment.kind=output-interpolation", "environment.transition.step=0.05",
                              "environment.epochs_per_task=1", "optim.batch_size=61", "tasks.count=3",
                              "data.samples_per_class=50", "diagnostics.every=never"]))
    assert f"plasticlab: {note}" in capsys.readouterr().err
