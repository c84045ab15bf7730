"""Vocabulary trimming keeps the corpus's tokenization and the model's function on it, at a fraction of the size."""

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from mangadistill.config import PACKAGED_MINILM
from mangadistill.errors import ConfigError
from mangadistill.models.encoders import load_tokenizer, resolve_model_path
from mangadistill.models.vocabulary import select_vocabulary, trim_vocabulary

CORPUS = ["where is my order MA-123456?", "is volume 3 of frieren in stock", "recommend a dark fantasy manga like berserk",
          "how much is chainsaw man vol 12", "i want a refund for a damaged box set"]
UNSEEN = ["do you ship omnibus editions to reykjavik"]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_model_path(PACKAGED_MINILM))


def _model(vocab_size: int) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=3)
    return BertForSequenceClassification(config).eval()


def test_selection_keeps_specials_characters_and_corpus_pieces(tokenizer):
    ids, report = select_vocabulary(tokenizer, CORPUS, 4000)
    assert len(ids) == report.kept_size == 4000 and ids == sorted(ids)
    kept = set(ids)
    assert set(tokenizer.all_special_ids) <= kept
    assert set(tokenizer.convert_tokens_to_ids(["a", "##a", "z", "##z", "7"])) <= kept
    for text in CORPUS:
        assert set(tokenizer(text, add_special_tokens=False)["input_ids"]) <= kept
    vocab = tokenizer.get_vocab()
    assert not any(vocab_piece.startswith("[unused") for vocab_piece, i in vocab.items() if i in kept)
    assert report.original_size == len(vocab) and report.corpus_pieces > 0


def test_trimmed_student_tokenizes_and_predicts_like_the_full_one(tokenizer):
    model = _model(tokenizer.vocab_size)
    with torch.inference_mode():
        before = model(**tokenizer(CORPUS, padding=True, return_tensors="pt")).logits
    trimmed, small_tokenizer, report = trim_vocabulary(model, tokenizer, CORPUS, 3000)
    assert trimmed.get_input_embeddings().weight.shape == (3000, 32) and trimmed.config.vocab_size == 3000
    assert len(small_tokenizer) == 3000 and "3000" in report.describe()
    for text in CORPUS:
        assert small_tokenizer.tokenize(text) == tokenizer.tokenize(text)
    with torch.inference_mode():
        after = trimmed(**small_tokenizer(CORPUS, padding=True, return_tensors="pt")).logits
    torch.testing.assert_close(after, before)
    # unseen words still tokenize (into kept pieces), never into [UNK]
    assert small_tokenizer.unk_token not in small_tokenizer.tokenize(UNSEEN[0])


def test_too_small_a_vocabulary_is_a_config_error(tokenizer):
    with pytest.raises(ConfigError, match="student.vocab_size: 300 is below"):
        select_vocabulary(tokenizer, CORPUS, 300)


def test_non_wordpiece_tokenizer_is_refused(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    bpe = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE(vocab={"a": 0, "b": 1}, merges=[])))
    with pytest.raises(ConfigError, match="WordPiece"):
        trim_vocabulary(_model(2), bpe, ["ab"], 300)
