"""TinyBERT Stage 1 pieces: layer maps, head grouping, masked MSEs, the probe, tokenizer alignment."""

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from mangadistill.config import PACKAGED_MINILM, Stage1Config, StudentConfig, TrainingConfig
from mangadistill.errors import ConfigError
from mangadistill.losses.intermediate import (
    group_heads,
    masked_attention_mse,
    masked_mse,
    resolve_layer_map,
    uniform_layer_map,
)
from mangadistill.losses.kd import feature_transfer_loss
from mangadistill.models.encoders import build_student, load_tokenizer, resolve_model_path
from mangadistill.models.vocabulary import token_id_map, trim_vocabulary
from mangadistill.training.distill import build_layer_matcher
from mangadistill.training.loop import ClassificationTask, DistillationModule, OnlineTeacher, train_classifier

TEXTS = [f"{w} {i}" for i in range(16) for w in ("hello there", "how much is berserk", "do you ship abroad")]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_model_path(PACKAGED_MINILM))


def _bert(tokenizer, hidden=32, layers=2, heads=2, seed=0):
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden,
                                                    num_hidden_layers=layers, num_attention_heads=heads,
                                                    intermediate_size=2 * hidden, num_labels=3))


def _matcher(student, teacher, **kwargs):
    return build_layer_matcher(student, teacher, Stage1Config(**kwargs))


@pytest.mark.parametrize(("student", "teacher", "expected"), [
    (3, 6, (2, 4, 6)), (4, 12, (3, 6, 9, 12)), (4, 6, (2, 3, 4, 6)), (6, 6, (1, 2, 3, 4, 5, 6)), (2, 1, (1, 1)),
])
def test_uniform_layer_map_spreads_layers_and_ends_on_the_last(student, teacher, expected):
    assert uniform_layer_map(student, teacher) == expected


def test_explicit_layer_map_is_checked_against_both_depths():
    assert resolve_layer_map([1, 3, 6], 3, 6) == (1, 3, 6)
    with pytest.raises(ValueError, match="3 entries but the student has 4 layers"):
        resolve_layer_map([1, 3, 6], 4, 6)
    with pytest.raises(ValueError, match=r"\[7\] out of range: the teacher has layers 1..6"):
        resolve_layer_map([2, 7], 2, 6)


def test_a_bad_layer_map_is_a_config_error_naming_the_key(tokenizer):
    with pytest.raises(ConfigError, match="student.stage1.layer_map has 1 entries"):
        _matcher(_bert(tokenizer, layers=2), _bert(tokenizer, layers=4), layer_map=(2,))


def test_group_heads_averages_adjacent_heads():
    attention = torch.arange(2 * 4 * 3 * 3, dtype=torch.float32).view(2, 4, 3, 3)
    grouped = group_heads(attention, 2)
    assert grouped.shape == (2, 2, 3, 3)
    assert torch.allclose(grouped[:, 0], (attention[:, 0] + attention[:, 1]) / 2)
    assert torch.equal(group_heads(attention, 4), attention)


def test_masked_mse_ignores_padding_positions():
    student, teacher = torch.zeros(1, 4, 2), torch.ones(1, 4, 2)
    mask = torch.tensor([[1, 1, 0, 0]])
    base = masked_mse(student, teacher, mask)
    teacher[:, 2:] = 100.0  # padding differs wildly: no effect
    assert masked_mse(student, teacher, mask) == pytest.approx(float(base)) == pytest.approx(1.0)
    s_attn, t_attn = torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    t_attn[..., 3] = 5.0  # only key column 3 (padding) differs
    assert masked_attention_mse(s_attn, t_attn, mask) == 0


def test_identical_networks_have_zero_feature_and_attention_loss(tokenizer):
    teacher = _bert(tokenizer, hidden=32, layers=2, heads=4).eval()
    student = build_student(teacher, StudentConfig(teacher_layers=(0, 1))).eval()
    matcher = _matcher(student, teacher)
    assert matcher.layer_map == (1, 2) and all(isinstance(p, torch.nn.Identity) for p in matcher.projections)
    batch = tokenizer(TEXTS[:4], padding=True, return_tensors="pt")
    t = teacher(**batch, output_hidden_states=True, output_attentions=True)
    with torch.no_grad():
        _, losses = DistillationModule(student, matcher).eval()(dict(batch), t.hidden_states, t.attentions,
                                                                 matched=("feature", "attention"))
    assert float(losses["feature"]) == pytest.approx(0.0, abs=1e-10)
    assert float(losses["attention"]) == pytest.approx(0.0, abs=1e-10)


def test_different_widths_and_head_counts_get_projections_and_head_groups(tokenizer):
    teacher = _bert(tokenizer, hidden=48, layers=4, heads=12)
    student = _bert(tokenizer, hidden=32, layers=2, heads=4, seed=1)
    matcher = _matcher(student, teacher)
    assert matcher.layer_map == (2, 4) and matcher.head_groups == 4
    assert [tuple(p.weight.shape) for p in matcher.projections] == [(48, 32)] * 3  # embeddings + 2 layers
    assert "student layers 1,2 <- teacher layers 2,4 (+ embeddings)" in matcher.describe()


def test_the_probe_trains_the_head_only(tokenizer):
    student = _bert(tokenizer)
    module = DistillationModule(student, probe=True)
    batch = tokenizer(TEXTS[:6], padding=True, return_tensors="pt")
    logits, _ = module(dict(batch))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0, 1, 2])).backward()
    assert student.classifier.weight.grad is not None and student.bert.pooler.dense.weight.grad is not None
    encoder_grads = [p.grad for p in student.bert.encoder.parameters()] + [student.bert.embeddings.word_embeddings.weight.grad]
    assert all(g is None or not g.any() for g in encoder_grads)


def test_stage1_training_lowers_the_feature_loss_and_logs_stage1_metrics(tokenizer):
    teacher = _bert(tokenizer, hidden=48, layers=4, heads=4).eval()
    student = _bert(tokenizer, hidden=32, layers=2, heads=2, seed=1)
    stage1 = Stage1Config(training=TrainingConfig(epochs=3, batch_size=8, learning_rate=3e-3))
    labels = np.arange(len(TEXTS)) % 3
    task = ClassificationTask(TEXTS, labels, TEXTS[:12], labels[:12], 3, rare_ids=[2])
    result = train_classifier(student, tokenizer, task, feature_transfer_loss(stage1), stage1.training,
                              teacher=OnlineTeacher(teacher), matcher=_matcher(student, teacher), probe=True,
                              restore_best=False)
    first, last = result.history[0], result.history[-1]
    assert {"loss_feature", "loss_attention", "loss_probe", "probe_val_accuracy"} <= first.keys()
    assert "val_accuracy" not in first
    assert last["loss_feature"] < first["loss_feature"]
    assert result.best_epoch == 3 and result.stop_reason == "epoch budget reached (3 epochs)"


def test_trimmed_vocabulary_maps_back_to_teacher_ids(tokenizer):
    model = _bert(tokenizer)
    _, trimmed, _ = trim_vocabulary(model, tokenizer, TEXTS, 2500)
    mapping = token_id_map(trimmed, tokenizer, TEXTS)
    ids = trimmed(TEXTS[:3], padding=True, return_tensors="pt")["input_ids"]
    assert torch.equal(mapping[ids], tokenizer(TEXTS[:3], padding=True, return_tensors="pt")["input_ids"])
    assert token_id_map(tokenizer, tokenizer, TEXTS) is None  # same ids: nothing to translate


def test_layer_matching_across_different_tokenizers_is_refused(tokenizer, tmp_path):
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "there", "how", "much", "is", *"abcdefghijklmnopqrstuvwxyz"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    other = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    with pytest.raises(ConfigError, match="tokenize like the teacher.*logit-only KD"):
        token_id_map(other, tokenizer, ["how much is berserk"])


def test_a_student_of_copied_layers_matches_the_layers_it_was_copied_from(tokenizer):
    teacher = _bert(tokenizer, hidden=32, layers=6, heads=2)
    student = build_student(teacher, StudentConfig(teacher_layers=(0, 2, 4, 5)))
    assert build_layer_matcher(student, teacher, Stage1Config(), copied_layers=(0, 2, 4, 5)).layer_map == (1, 3, 5, 6)
    assert build_layer_matcher(student, teacher, Stage1Config()).layer_map == (2, 3, 4, 6)  # uniform otherwise
    explicit = Stage1Config(layer_map=(2, 4, 5, 6))
    assert build_layer_matcher(student, teacher, explicit, copied_layers=(0, 2, 4, 5)).layer_map == (2, 4, 5, 6)
