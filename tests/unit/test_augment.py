"""Teacher-labelled augmentation: the transformations, the no-leak rule, query logs, and how training uses it."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mangadistill.config import DistillIntentConfig
from mangadistill.data.augment import (
    HELD_OUT,
    TRANSFORMATIONS,
    ContextSubstitutes,
    augment_training_split,
    drop_word,
    read_query_log,
    splice,
    swap_words,
)
from mangadistill.data.cleaning import near_duplicate_key
from mangadistill.data.dataset import IntentDataset
from mangadistill.errors import DataError
from mangadistill.losses.kd import UNLABELLED, hard_label_loss
from mangadistill.teacher.labeling import AUGMENTED, SplitLabels, TeacherLabels
from mangadistill.training.distill import task_from_dataset

TRAIN = [
    ("where is my order right now", "order_status"),
    ("where is my parcel right now", "order_status"),
    ("how much is the naruto box set", "price"),
    ("how much is the berserk deluxe edition", "price"),
    ("can i return a damaged volume", "returns"),
    ("can i return a misprinted volume please", "returns"),
]


def _dataset(train=TRAIN, val=(("where is my box right now", "order_status"),),
             gate=(("how much is the one piece set", "price"),)) -> IntentDataset:
    def frame(rows):
        return pd.DataFrame(list(rows), columns=["text", "label"])

    return IntentDataset(labels=("order_status", "price", "returns"), rare_labels=(), refusal_label=None,
                         train=frame(train), val=frame(val), gate=frame(gate))


def test_word_transformations():
    rng = np.random.default_rng(0)
    words = "where is my order".split()
    dropped = drop_word(words, rng)
    assert len(dropped) == 3 and all(w in words for w in dropped)
    swapped = swap_words(words, rng)
    assert sorted(swapped) == sorted(words) and swapped != words
    assert drop_word(["hi", "there"], rng) == ["hi", "there"]  # too short to change
    assert splice("a b c".split(), "x y z w".split()) == ["a", "b", "z", "w"]


def test_replace_word_uses_words_seen_between_the_same_neighbours():
    corpus = [s.split() for s in ("where is my order now", "where is my parcel now", "hello there")]
    substitutes = ContextSubstitutes(corpus)
    replaced = substitutes.replace_word("where is my order now".split(), np.random.default_rng(0))
    assert replaced == "where is my parcel now".split()
    assert substitutes.replace_word(["hello", "there"], np.random.default_rng(0)) == ["hello", "there"]


def test_augmentation_is_deterministic_counted_and_never_copies_a_held_out_query():
    dataset = _dataset()
    first = augment_training_split(dataset, 3.0, TRANSFORMATIONS, seed=5)
    again = augment_training_split(dataset, 3.0, TRANSFORMATIONS, seed=5)
    pd.testing.assert_frame_equal(first.frame, again.frame)
    report = first.report
    asked = 3 * len(TRAIN)
    assert report["rows"] == len(first) and len(first) + sum(report["set_aside"].values()) == asked  # nothing lost
    keys = [near_duplicate_key(t) for t in first.texts]
    held_out = {near_duplicate_key(t) for t in dataset.texts("val") + dataset.texts("gate")}
    assert len(set(keys)) == len(keys) and not set(keys) & held_out
    assert not set(keys) & {near_duplicate_key(t) for t in dataset.texts("train")}
    assert set(first.frame["transformation"]) <= set(TRANSFORMATIONS)
    spliced = first.frame[first.frame["transformation"] == "splice"]
    for sources in spliced["source_rows"]:
        i, j = map(int, sources.split("+"))
        assert TRAIN[i][1] != TRAIN[j][1]  # a splice joins two intents
    assert augment_training_split(dataset, 0.0, TRANSFORMATIONS, seed=5).report["rows"] == 0


def test_a_made_query_equal_to_a_gate_query_is_set_aside():
    dataset = _dataset(train=[("how much is the one piece box set", "price"), ("where is it", "order_status")],
                       gate=(("How much is the One Piece set?", "price"),))
    made = augment_training_split(dataset, 40.0, ("drop_word",), seed=1)  # dropping "box" makes the gate query
    assert "how much is the one piece set" not in made.texts
    assert any(reason.endswith(HELD_OUT) for reason in made.report["set_aside"])


def test_query_logs_are_scrubbed_deduplicated_and_counted(tmp_path):
    log = tmp_path / "queries.jsonl"
    rows = [{"text": "ship it to jo@example.com"}, {"text": "   "}, {"text": "where is my order right now"},
            {"label": "no text"}]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    texts, counts = read_query_log(log)
    assert texts == ["ship it to [EMAIL]", "where is my order right now"]
    assert counts == {"pii_scrubbed": 1, "blank": 1, "no 'text' string": 1, "unreadable JSON line": 1}
    made = augment_training_split(_dataset(), 0.0, TRANSFORMATIONS, seed=0, log_texts=texts)
    assert made.texts == ["ship it to [EMAIL]"]  # the second one is a training query
    assert made.report["set_aside"] == {"log: duplicate": 1}
    txt = tmp_path / "q.txt"
    txt.write_text("one\ntwo\nthree\n")
    assert read_query_log(txt, max_rows=2) == (["one", "two"], {"over max_log_rows": 1})
    with pytest.raises(DataError, match="augment.log_path must be a .txt, .csv or .jsonl"):
        read_query_log(_touch(tmp_path / "q.parquet"))
    with pytest.raises(DataError, match="no 'text' column"):
        read_query_log(_touch(tmp_path / "q.csv", "query\nhello\n"))


def _touch(path, content="x\n"):
    path.write_text(content)
    return path


def test_unknown_transformation_is_a_config_error():
    with pytest.raises(ValueError, match="transformations"):
        DistillIntentConfig.model_validate({"augment": {"copies": 1, "transformations": ["paraphrase"]}})


def test_training_task_appends_augmented_queries_as_unlabelled_rows():
    dataset = _dataset()
    logits = {split: np.random.default_rng(0).normal(size=(len(dataset.split(split)), 3)).astype(np.float32)
              for split in ("train", "val", "gate")}
    augmented = np.ones((2, 3), dtype=np.float32)
    labels = TeacherLabels(dataset.labels, 0.2, {**{s: SplitLabels.from_logits(v) for s, v in logits.items()},
                                                 AUGMENTED: SplitLabels.from_logits(augmented)},
                           augmented_texts=("where is my order", "how much is naruto"))
    task = task_from_dataset(dataset, labels)
    assert task.train_texts[-2:] == ["where is my order", "how much is naruto"]
    assert task.train_labels.tolist()[-2:] == [UNLABELLED, UNLABELLED]
    assert task.train_teacher_logits.shape == (len(TRAIN) + 2, 3)
    np.testing.assert_array_equal(task.train_teacher_logits[-2:], augmented)


def test_cross_entropy_skips_unlabelled_rows():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]], requires_grad=True)
    labelled_only = hard_label_loss(logits[:2], torch.tensor([0, 1]))
    mixed = hard_label_loss(logits, torch.tensor([0, 1, UNLABELLED]))
    assert mixed.item() == pytest.approx(labelled_only.item())
    none = hard_label_loss(logits, torch.tensor([UNLABELLED] * 3))
    assert none.item() == 0.0
    none.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))
