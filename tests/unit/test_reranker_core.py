"""Ranking metrics against hand-computed lists, the distillation loss on tensors, the 9.5 stop rule on the
9.4 table, the documented relevance rules and the reranking data (generated and brought)."""

import json
import math

import pytest
import torch

from mangadistill.data.synthetic import load_catalog
from mangadistill.errors import DataError
from mangadistill.reranker.dataset import generate_dataset, read_jsonl_lists, read_trec
from mangadistill.reranker.judge import RelevanceJudge
from mangadistill.reranker.losses import RerankLoss
from mangadistill.reranker.metrics import dcg_at_k, mrr_at_k, ndcg_at_k, ranking_metrics, top3_swapped, top_k_agreement
from mangadistill.training.stop_rules import RerankerStopRule, select_deployment_epoch


# ------------------------------------------------------------------------------------------------ metrics
def test_dcg_and_ndcg_by_hand():
    # ranked labels 3, 2, 0, 1: DCG = 7/log2(2) + 3/log2(3) + 0 + 1/log2(5)
    dcg = 7 + 3 / math.log2(3) + 1 / math.log2(5)
    assert dcg_at_k([3, 2, 0, 1], 10) == pytest.approx(dcg)
    ideal = 7 + 3 / math.log2(3) + 1 / math.log2(4)  # 3, 2, 1, 0
    assert ndcg_at_k([3, 2, 0, 1], 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k([3, 2, 1, 0]) == pytest.approx(1.0)
    assert ndcg_at_k([0, 3], k=1) == 0.0  # the only relevant item is below the cut
    assert math.isnan(ndcg_at_k([0, 0, 0]))  # nothing relevant: not judgeable


def test_mrr_swap_and_agreement_by_hand():
    assert mrr_at_k([0, 0, 2, 3]) == pytest.approx(1 / 3)
    assert mrr_at_k([0, 0, 2], k=2) == 0.0
    assert top3_swapped([3, 1, 2]) and top3_swapped([0, 3, 3])
    assert not top3_swapped([3, 3, 1, 3])  # a swap below the top 3 does not count
    assert top_k_agreement(["a", "b", "c", "d"], ["a", "b", "c", "x"])
    assert not top_k_agreement(["a", "b", "c"], ["a", "c", "b"])


def test_ranking_metrics_ranks_by_score_and_skips_unjudgeable_queries():
    scores = [[0.1, 0.9, 0.5], [0.3, 0.2], [1.0, 2.0]]
    labels = [[0, 3, 1], [1, 0], [0, 0]]  # the third query has nothing relevant
    metrics = ranking_metrics(scores, labels)
    assert metrics["queries_scored"] == 2
    assert metrics["ndcg_at_10"] == pytest.approx(1.0) and metrics["mrr_at_10"] == pytest.approx(1.0)
    assert metrics["top3_swap_rate"] == 0.0
    worst = ranking_metrics([[0.9, 0.1, 0.5]], [[0, 3, 1]])
    assert worst["mrr_at_10"] == pytest.approx(1 / 2) and worst["top3_swap_rate"] == 1.0


# ------------------------------------------------------------------------------------------------ loss
def _tensors(seed=0):
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(3, 5, generator=generator)
    teacher = torch.randn(3, 5, generator=generator)
    labels = torch.tensor([[3, 0, 1, 0, 0], [0, 0, 0, 0, 0], [2, 2, 0, 1, 3]])
    return student, teacher, labels


def test_alpha_one_is_the_supervised_loss():
    student, teacher, labels = _tensors()
    terms = RerankLoss(alpha=1.0, pairwise_weight=0.0)(student, labels, teacher)
    assert torch.allclose(terms.total, terms.supervised)
    assert RerankLoss()(student, labels).total == pytest.approx(float(terms.supervised))
    # listwise cross-entropy by hand for the first query (the second has nothing relevant and is left out)
    def listwise(s, l):
        gains = 2.0 ** l.float() - 1
        return -(gains / gains.sum() * torch.log_softmax(s, 0)).sum()
    expected = (listwise(student[0], labels[0]) + listwise(student[2], labels[2])) / 2
    assert float(terms.supervised) == pytest.approx(float(expected), rel=1e-6)


def test_identical_scores_give_zero_mse_and_pairwise():
    student, _, labels = _tensors()
    terms = RerankLoss(alpha=0.3, pairwise_weight=0.5)(student, labels, student.clone())
    assert float(terms.mse) == 0.0 and float(terms.pairwise) == 0.0
    assert float(terms.total) == pytest.approx(0.3 * float(terms.supervised))
    # teacher scores shifted per query: a ranking is shift-invariant, so neither the (query-centred) MSE nor the
    # pairwise margin term sees it; the raw MSE does
    shift = torch.tensor([[2.0], [-1.0], [0.5]])
    shifted = RerankLoss(alpha=0.0, pairwise_weight=1.0)(student, labels, student + shift)
    assert float(shifted.mse) == pytest.approx(0.0, abs=1e-6) and float(shifted.pairwise) == pytest.approx(0.0, abs=1e-6)
    raw = RerankLoss(alpha=0.0, pairwise_weight=1.0, centre_mse=False)(student, labels, student + shift)
    assert float(raw.mse) == pytest.approx(float((shift ** 2).mean()))


def test_centred_mse_by_hand_ignores_padding():
    student = torch.tensor([[1.0, 2.0, 9.0]])
    teacher = torch.tensor([[0.0, 3.0, -5.0]])
    mask = torch.tensor([[True, True, False]])
    terms = RerankLoss(alpha=0.0)(student, torch.zeros(1, 3), teacher, mask)
    # differences (1, -1) have mean 0: centred MSE = (1 + 1) / 2 over the two real candidates
    assert float(terms.mse) == pytest.approx(1.0)
    terms = RerankLoss(alpha=0.0)(student, torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 0.0]]), mask)
    # differences (1, 2): mean 1.5, centred (-0.5, 0.5) -> 0.25
    assert float(terms.mse) == pytest.approx(0.25)


def test_padding_takes_no_part_and_loss_checks_its_inputs():
    student, teacher, labels = _tensors()
    mask = torch.ones_like(student, dtype=torch.bool)
    mask[:, -1] = False
    loss = RerankLoss(alpha=0.5, pairwise_weight=1.0)
    padded = student.clone()
    padded[:, -1] = 100.0  # garbage in padding must not change anything
    assert torch.allclose(loss(student, labels, teacher, mask).total, loss(padded, labels, teacher, mask).total)
    with pytest.raises(ValueError, match="teacher"):
        loss(student, labels)
    with pytest.raises(ValueError, match="alpha"):
        RerankLoss(alpha=1.5)


def test_loss_has_gradient_even_without_a_relevant_candidate():
    student = torch.zeros(1, 3, requires_grad=True)
    RerankLoss()(student, torch.zeros(1, 3)).total.backward()
    assert student.grad is not None


# ------------------------------------------------------------------------------------------- stop rule
TABLE_9_4 = [  # runbook 9.4: epoch, pairwise loss, MSE score loss, NDCG@10
    {"epoch": 1, "loss_pairwise": 0.491, "loss_mse": 0.228, "val_ndcg_at_10": 0.771},
    {"epoch": 2, "loss_pairwise": 0.444, "loss_mse": 0.192, "val_ndcg_at_10": 0.784},
    {"epoch": 3, "loss_pairwise": 0.437, "loss_mse": 0.183, "val_ndcg_at_10": 0.791},
    {"epoch": 4, "loss_pairwise": 0.433, "loss_mse": 0.181, "val_ndcg_at_10": 0.790},
]


def test_stop_rule_on_table_9_4_stops_after_epoch_4_and_keeps_epoch_3():
    rule = RerankerStopRule()
    decisions = [rule.decide(TABLE_9_4[:n]) for n in range(1, 5)]
    assert [d.stop for d in decisions] == [False, False, False, True]
    assert "-0.0010" in decisions[-1].reason
    assert select_deployment_epoch(TABLE_9_4, metric="val_ndcg_at_10").epoch == 3
    # 9.5 read literally (stop when the gain turns non-positive) gives the same epochs
    assert [RerankerStopRule(min_ndcg_gain=0.0).decide(TABLE_9_4[:n]).stop for n in range(2, 5)] == [False, False, True]


def test_stop_rule_on_an_unstable_swap_rate():
    history = [{"epoch": 1, "val_ndcg_at_10": 0.70, "val_top3_swap_rate": 0.20},
               {"epoch": 2, "val_ndcg_at_10": 0.72, "val_top3_swap_rate": 0.30}]
    decision = RerankerStopRule(max_swap_rate_rise=0.05).decide(history)
    assert decision.stop and decision.conditions == {"val_ndcg_at_10": False, "val_top3_swap_rate": True}
    assert not RerankerStopRule(max_swap_rate_rise=0.2).decide(history).stop


# --------------------------------------------------------------------------------------- relevance rules
@pytest.fixture(scope="module")
def judge():
    return RelevanceJudge(load_catalog())


def _grade(judge, query, title):
    entry = next(e for e in judge.entries if e.title == title)
    return judge.grade(query, [entry])[0]


def test_title_rules(judge):
    assert _grade(judge, "do you have Berserk?", "Berserk") == 3
    assert _grade(judge, "do you have Berserk?", "Berserk Deluxe Edition") == 2  # same series
    assert _grade(judge, "berserk deluxe edition vol 2", "Berserk Deluxe Edition") == 3  # the longest title wins
    assert _grade(judge, "do you have Berserk?", "Vinland Saga") == 0


def test_similar_author_genre_and_price_rules(judge):
    assert _grade(judge, "something like Berserk", "Berserk") == 1  # the shopper has read it
    assert _grade(judge, "something like Berserk", "Berserk Deluxe Edition") == 1
    assert _grade(judge, "manga by Junji Ito", "Uzumaki (3-in-1 Deluxe Edition)") == 3
    assert _grade(judge, "manga by Junji Ito", "Berserk") == 0
    assert _grade(judge, "creepy manga", "Uzumaki (3-in-1 Deluxe Edition)") == 3  # a synonym of horror
    assert _grade(judge, "fantasy manga", "Berserk") == 3  # "fantasy" matches "dark fantasy"
    entry = next(e for e in judge.entries if e.title == "Uzumaki (3-in-1 Deluxe Edition)")
    under = judge.grade(f"horror manga under ${entry.price_usd + 1:.0f}", [entry])[0]
    over = judge.grade(f"horror manga under ${entry.price_usd - 5:.0f}", [entry])[0]
    assert (under, over) == (3, 1)  # both attributes met / only the genre (mean 0.5)
    assert judge.grade("where is my order?") is None  # nothing to judge by


# -------------------------------------------------------------------------------------------------- data
def test_generated_data_is_deterministic_split_by_group_and_labelled_by_the_rules():
    first, again = generate_dataset(60, seed=3, k=12, hard_negatives=3), generate_dataset(60, seed=3, k=12, hard_negatives=3)
    assert first.fingerprint() == again.fingerprint()
    assert first.fingerprint() != generate_dataset(60, seed=4, k=12, hard_negatives=3).fingerprint()
    assert {q.split for q in first.queries} == {"train", "val", "gate"}
    groups = {}
    for q in first.queries:
        groups.setdefault(q.group, set()).add(q.split)
    assert all(len(splits) == 1 for splits in groups.values())  # no group crosses a split
    judge = RelevanceJudge(load_catalog())
    for q in first.queries:
        assert len(q.doc_ids) == 12 and len(set(q.doc_ids)) == 12 and max(q.labels) > 0
        entries = [judge.entries[int(d[4:])] for d in q.doc_ids]
        assert list(q.labels) == judge.grade(q.query, entries)


def test_transfer_queries_are_unlabelled_outside_held_out_groups_and_leave_the_splits_alone():
    plain = generate_dataset(60, seed=3, k=12, hard_negatives=3)
    with_transfer = generate_dataset(60, seed=3, k=12, hard_negatives=3, transfer_queries=40)
    labelled = [q for q in with_transfer.queries if q.split != "transfer"]
    assert labelled == list(plain.queries)  # the labelled queries and the frozen gate set do not move
    transfer = with_transfer.split("transfer")
    held_out = {q.group for q in plain.queries if q.split != "train"}
    dropped = with_transfer.skipped.get("transfer_in_held_out_group", 0)
    assert len(transfer) + dropped == 40 and transfer
    assert all(q.labels is None and q.group not in held_out for q in transfer)
    assert not {q.query for q in transfer} & {q.query for q in plain.queries}
    assert with_transfer.counts()["split"]["transfer"] == len(transfer)


def test_unlabelled_queries_take_no_part_in_the_supervised_loss():
    student, teacher, labels = _tensors()
    loss = RerankLoss(alpha=0.5, pairwise_weight=0.5)
    everyone = loss(student, labels, teacher)
    only_first = loss(student, labels, teacher, labelled=torch.tensor([True, True, False]))
    first = loss(student[:1], labels[:1], teacher[:1])
    assert float(only_first.supervised) == pytest.approx(float(first.supervised))  # query 2 has no relevant one
    assert float(only_first.supervised) != pytest.approx(float(everyone.supervised))
    assert float(only_first.mse) == pytest.approx(float(everyone.mse))  # the teacher terms keep every query
    assert float(only_first.pairwise) == pytest.approx(float(everyone.pairwise))


def test_jsonl_lists_quarantine_bad_rows_and_scrub_pii(tmp_path):
    good = {"query": "berserk for me@example.com", "candidates": [{"text": "Berserk", "label": 3}, {"text": "Naruto", "label": 0}]}
    lines = [json.dumps({**good, "query": f"q{i} berserk", "split": split})
             for i, split in enumerate(["train", "train", "val", "gate"])]
    lines += [json.dumps(good), "not json", json.dumps({"query": "x", "candidates": [{"text": "a", "label": 7}]}),
              json.dumps({"query": "", "candidates": []}), json.dumps({"query": "y", "candidates": [{"text": "a", "label": True}]})]
    path = tmp_path / "lists.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    dataset = read_jsonl_lists(path, val_fraction=0.2, gate_fraction=0.2, split_seed=0)
    assert len(dataset.queries) == 5 and [r.line for r in dataset.quarantined] == [6, 7, 8, 9]
    assert "label must be an integer 0-3" in dataset.quarantined[1].reason
    assert all("me@example.com" not in q.query for q in dataset.queries)
    assert dataset.split("gate")[0].labels == (3, 0)
    path.write_text(lines[0] + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="no queries in split"):
        read_jsonl_lists(path, val_fraction=0.2, gate_fraction=0.2, split_seed=0)


def test_trec_qrels_with_corpus_and_queries(tmp_path):
    corpus = [{"_id": f"d{i}", "title": t, "text": f"{t} is a manga"} for i, t in
              enumerate(["Berserk", "Naruto", "Bleach", "Monster", "Akira", "Nana"])]
    (tmp_path / "corpus.jsonl").write_text("\n".join(map(json.dumps, corpus)), encoding="utf-8")
    queries = [{"_id": f"q{i}", "text": t} for i, t in enumerate(["berserk", "naruto", "bleach", "monster", "akira"])]
    (tmp_path / "queries.jsonl").write_text("\n".join(map(json.dumps, queries)), encoding="utf-8")
    qrels = ["query-id corpus-id score"] + [f"q{i} 0 d{i} 3" for i in range(5)] + ["q0 0 d9 1", "q1 0 d1 x"]
    (tmp_path / "qrels.txt").write_text("\n".join(qrels), encoding="utf-8")
    dataset = read_trec(tmp_path / "qrels.txt", tmp_path / "corpus.jsonl", tmp_path / "queries.jsonl", k=4,
                        val_fraction=0.2, gate_fraction=0.2, split_seed=1)
    assert len(dataset.queries) == 5 and len(dataset.quarantined) == 2
    first = next(q for q in dataset.queries if q.query_id == "q0")
    assert first.doc_ids[0] == "d0" and first.labels == (3, 0, 0, 0)  # the judged one, then BM25's unjudged best


def test_patience_rides_out_one_dip():
    dip = [{"epoch": 1, "val_ndcg_at_10": 0.78}, {"epoch": 2, "val_ndcg_at_10": 0.77},
           {"epoch": 3, "val_ndcg_at_10": 0.81}, {"epoch": 4, "val_ndcg_at_10": 0.811}, {"epoch": 5, "val_ndcg_at_10": 0.80}]
    rule = RerankerStopRule(patience=2)
    assert [rule.decide(dip[:n]).stop for n in range(2, 6)] == [False, False, False, True]
    assert RerankerStopRule(patience=1).decide(dip[:2]).stop
    with pytest.raises(ValueError, match="patience"):
        RerankerStopRule(patience=0).decide(dip)
