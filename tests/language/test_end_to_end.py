import json

import pytest

pytest.importorskip("transformers")

from plasticlab.api import run  # noqa: E402

MEASURES = ["train_loss", "train_acc", "train_bleu2", "train_exact", "test_loss", "test_acc", "test_bleu2",
            "test_exact"]


def rows(run_dir, event):
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["event"] == event]


def config(family: dict, kind: str) -> dict:
    return {"tasks": {"count": 2, "word_length": 3, "pairs": 64, "bleu_pairs": 16, "beams": 3, **family},
            "model": {"name": "t5", "d_model": 32, "d_ff": 64, "heads": 4},
            "environment": {"kind": kind, "epochs_per_task": 1, "transition": {"length": 1.0, "step": 0.5}},
            "optim": {"name": "adamw", "lr": 1e-3, "batch_size": 16},
            "diagnostics": {"every": "task", "probe_size": 16}, "engine": {"device": "cpu", "threads": 1}}


@pytest.mark.parametrize("kind", ["abrupt", "task-sampling"])
def test_cipher_runs_in_both_environments(tmp_path, kind):
    d = run(config({"family": "bigram-cipher", "words": 2, "test_pairs": 32}, kind), out=tmp_path / kind)
    ends = rows(d, "task_end")
    assert [r["task"] for r in ends] == [0, 1]
    for r in ends:
        assert all(r[m] is not None for m in MEASURES)
        assert 0 <= r["test_bleu2"] <= 1 and 0 <= r["test_acc"] <= 1 and r["test_loss"] > 0
        assert r["input_sensitivity"] > 0 and set(r["layers"]) == {"encoder.0.ff", "decoder.0.ff"}
    # 64 pairs / batch 16 = 4 steps per epoch; compute-matched: (1 + k)·E = 2 epochs per task
    steps = [r["steps"] for r in rows(d, "phase")]
    assert sum(steps) == 16
    alphas = [r["alpha"] for r in rows(d, "epoch")]
    assert alphas == ([None] * 4 if kind == "abrupt" else [None, None, 0.5, None])
    # training lowered the per-token loss of task 0 below chance (ln 30 ≈ 3.4 after a high start)
    first = rows(d, "epoch")[0]["train_loss"]
    assert ends[1]["train_loss"] < first


def test_seq2seq_has_no_test_measures(tmp_path):
    d = run(config({"family": "random-seq2seq", "input_words": 3, "target_words": 2}, "task-sampling"),
            out=tmp_path / "s2s")
    end = rows(d, "task_end")[-1]
    assert end["test_bleu2"] is None and end["test_acc"] is None
    assert 0 <= end["train_bleu2"] <= 1 and 0 < end["train_acc"] <= 1
    assert end["train_exact"] == 0.0  # 8 steps: no whole target right yet
