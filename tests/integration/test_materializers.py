"""Materializers round-trip the project's artifact types through a real local artifact store."""

import numpy as np
import pandas as pd
import pytest
from transformers import BertConfig, BertForSequenceClassification

from mangadistill.config import PACKAGED_MINILM
from mangadistill.data.dataset import IntentDataset
from mangadistill.models.encoders import load_model_dir, load_tokenizer, resolve_model_path, save_model_dir
from mangadistill.teacher.labeling import SplitLabels, TeacherLabels
from materializers import IntentDatasetMaterializer, ModelDirMaterializer, TeacherLabelsMaterializer


def _roundtrip(materializer_cls, data, uri):
    from zenml.client import Client

    store = Client().active_stack.artifact_store
    uri.mkdir(parents=True)  # ZenML creates the artifact folder before calling save()
    materializer_cls(str(uri), artifact_store=store).save(data)
    return materializer_cls(str(uri), artifact_store=store).load(type(data))


def test_intent_dataset_roundtrip(tmp_path):
    frame = pd.DataFrame({"text": ["hi there", "ünïcode — ok", "refund [EMAIL]"], "label": ["greeting", "price", "returns_refunds"]})
    quarantine = pd.DataFrame({"text": [""], "label": ["price"], "reason": ["empty_text"]})
    data = IntentDataset(("greeting", "price", "returns_refunds"), ("price",), None, frame, frame.iloc[:1], frame.iloc[1:],
                         quarantine=quarantine, report={"rows_in": 4, "quarantined": 1})
    loaded = _roundtrip(IntentDatasetMaterializer, data, tmp_path / "ds")
    pd.testing.assert_frame_equal(loaded.train, data.train)
    pd.testing.assert_frame_equal(loaded.gate.reset_index(drop=True), data.gate.reset_index(drop=True))
    pd.testing.assert_frame_equal(loaded.quarantine, data.quarantine)
    assert loaded.labels == data.labels and loaded.rare_labels == ("price",) and loaded.refusal_label is None
    assert loaded.report == data.report


def test_empty_quarantine_roundtrip(tmp_path):
    frame = pd.DataFrame({"text": ["a"], "label": ["x"]})
    loaded = _roundtrip(IntentDatasetMaterializer, IntentDataset(("x",), (), None, frame, frame, frame), tmp_path / "ds")
    assert loaded.quarantine.empty and list(loaded.quarantine.columns) == ["text", "label", "reason"]


def test_teacher_labels_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    labels = TeacherLabels(("a", "b", "c"), 0.2, summary={"rows_processed": 5})
    labels.splits["train"] = SplitLabels.from_logits(rng.normal(size=(5, 3)).astype(np.float32))
    loaded = _roundtrip(TeacherLabelsMaterializer, labels, tmp_path / "tl")
    np.testing.assert_array_equal(loaded.splits["train"].logits, labels.splits["train"].logits)
    np.testing.assert_array_equal(loaded.splits["train"].hard, labels.splits["train"].hard)
    assert loaded.summary == labels.summary and loaded.labels == labels.labels


def test_split_labels_spread_and_entropy():
    split = SplitLabels.from_logits(np.array([[10.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32))
    assert split.spread[0] == pytest.approx(1.0, abs=1e-3) and split.spread[1] == pytest.approx(0.0, abs=1e-6)
    assert split.entropy[1] == pytest.approx(np.log(3), rel=1e-5)
    assert split.hard.tolist() == [0, 0]


def test_model_dir_roundtrip_moves_only_ephemeral_folders(tmp_path):
    tokenizer = load_tokenizer(resolve_model_path(PACKAGED_MINILM))
    model = BertForSequenceClassification(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=64, num_labels=2))
    kept = save_model_dir(model, tokenizer, tmp_path / "user", role="student", labels=["a", "b"], max_length=16)
    loaded = _roundtrip(ModelDirMaterializer, kept, tmp_path / "art1")
    assert (tmp_path / "user" / "config.json").exists()  # a user's folder is never deleted
    assert loaded.card["labels"] == ["a", "b"]
    network, _ = load_model_dir(loaded)
    assert network.config.num_labels == 2

    scratch = save_model_dir(model, tokenizer, tmp_path / "scratch", role="student", labels=["a", "b"], max_length=16,
                             ephemeral=True)
    expected_mb = scratch.size_mb()
    _roundtrip(ModelDirMaterializer, scratch, tmp_path / "art2")
    assert not (tmp_path / "scratch").exists()
    # metadata and the card visualization come from the stored copy, after the scratch folder is gone
    materializer = ModelDirMaterializer(str(tmp_path / "art2"))
    metadata = materializer.extract_metadata(scratch)
    assert metadata["role"] == "student" and metadata["labels"] == 2 and metadata["size_mb"] == round(expected_mb, 2)
    (card_path,) = materializer.save_visualizations(scratch)
    assert "student classifier" in (tmp_path / "art2" / "model_card.md").read_text() and card_path.endswith(".md")
