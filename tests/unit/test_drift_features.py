"""Query features for drift: descriptors, vocabulary, embedding components; the prediction adapter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mangadistill.config import PACKAGED_MINILM
from mangadistill.drift.features import embedding_components, load_vocabulary, oov_rate, text_descriptors, words
from mangadistill.errors import ModelLoadError
from mangadistill.drift.production import ProductionModel, predict_intents
from mangadistill.drift.report import monitored_columns
from mangadistill.errors import ModelLoadError

VOCABULARY = frozenset({"is", "vol", "of", "out", "yet", "where", "my", "order"})


def test_words_ignore_case_digits_ids_and_tags():
    assert words("Is VOL 3 of Kagurabachi out yet?? [EMAIL] MA-123456 don't") == [
        "is", "vol", "of", "kagurabachi", "out", "yet", "email", "ma", "don't"]


def test_oov_rate_is_the_share_of_words_outside_the_vocabulary():
    assert oov_rate("is vol 3 of kagurabachi out yet", VOCABULARY) == pytest.approx(1 / 6)
    assert oov_rate("where is my order", VOCABULARY) == 0.0
    assert oov_rate("ngl lowkey", VOCABULARY) == 1.0
    assert oov_rate("123 ???", VOCABULARY) == 0.0  # no words, nothing out of vocabulary


def test_text_descriptors_per_query():
    frame = text_descriptors(["where is my order", "ngl  lowkey fire"], VOCABULARY)
    assert list(frame.columns) == ["text_length", "word_count", "oov_rate"]
    assert frame.to_dict("list") == {"text_length": [17, 16], "word_count": [4, 3], "oov_rate": [0.0, 1.0]}


def test_packaged_vocabulary_has_whole_words_only():
    vocabulary = load_vocabulary(PACKAGED_MINILM)
    assert 20_000 < len(vocabulary) < 30_522
    assert {"manga", "order", "price", "shipping"} <= vocabulary
    assert not any(entry.startswith(("##", "[")) for entry in vocabulary)
    assert "kagurabachi" not in vocabulary and "ngl" not in vocabulary


def test_missing_vocabulary_is_a_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no vocab.txt"):
        load_vocabulary(str(tmp_path))


def test_embedding_components_are_fitted_on_the_reference():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(200, 16)) * np.linspace(3.0, 0.1, 16)  # variance falls along the axes
    current = reference[:50] + 5.0
    ref_pcs, cur_pcs, explained = embedding_components(reference, current, 3)
    assert list(ref_pcs.columns) == ["emb_pc1", "emb_pc2", "emb_pc3"] and cur_pcs.shape == (50, 3)
    assert np.allclose(ref_pcs.mean(), 0.0, atol=1e-9)  # centred on the reference, not on the current sample
    assert abs(cur_pcs.mean().sum()) > 1.0
    assert ref_pcs.var().is_monotonic_decreasing and 0.0 < explained.sum() <= 1.0
    again = embedding_components(reference, current, 3)[0]
    pd.testing.assert_frame_equal(ref_pcs, again)
    with pytest.raises(ValueError, match="n_components=17"):
        embedding_components(reference, current, 17)


# --------------------------------------------------------------------------------- prediction adapter
class _Answers:
    """A loaded intent version as the one loader returns it: one answer per text."""

    def __init__(self, drop_last: bool = False) -> None:
        self.drop_last, self.calls = drop_last, []

    def predict(self, texts):
        self.calls.append(len(texts))
        answers = [{"intent": "price" if "$" in t else "greeting", "confidence": 0.9 if "$" in t else 0.55}
                   for t in texts]
        return answers[:-1] if self.drop_last else answers


def test_predictions_follow_the_answer_contract_in_batches():
    model = _Answers()
    frame = predict_intents(model, ["$5?", "hi", "hey"], batch_size=2)
    assert frame.to_dict("list") == {"predicted_intent": ["price", "greeting", "greeting"],
                                     "confidence": [0.9, 0.55, 0.55]}
    assert model.calls == [2, 1]
    with pytest.raises(ModelLoadError, match="returned 2 predictions for 3 queries"):
        predict_intents(_Answers(drop_last=True), ["$5?", "hi", "hey"], batch_size=3)


def test_production_model_uri_and_record():
    model = ProductionModel("mangaassist-intent", "3", "alias 'production'", "distill_intent-run")
    assert model.uri == "models:/mangaassist-intent/3"
    assert model.as_dict()["uri"] == model.uri and model.as_dict()["training_run"] == "distill_intent-run"


def test_monitored_columns_in_report_order_and_only_where_both_sides_have_them():
    reference = pd.DataFrame(columns=["label", "confidence", "predicted_intent", "emb_pc10", "emb_pc2", "emb_pc1",
                                      "oov_rate", "word_count", "text_length", "text"])
    current = reference.drop(columns=["confidence", "label"])
    assert monitored_columns(reference, current) == ["text", "text_length", "word_count", "oov_rate", "emb_pc1",
                                                     "emb_pc2", "emb_pc10", "predicted_intent"]
