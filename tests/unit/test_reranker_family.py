"""The reranker family: its shipped configs equal its defaults, and its shadow comparison and observation
on real rankings of the catalog (graded by the documented rules)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mangadistill.config import DistillRerankerConfig, MonitorConfig, PromoteConfig, load_config
from mangadistill.data.synthetic import load_catalog
from mangadistill.families import family_for_model, get_family
from mangadistill.families.reranker import RerankerFamily, RerankerOptions, judged_ndcg
from mangadistill.lifecycle.shadow import Replay
from mangadistill.reranker.corpus import catalog_passages

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAMILY = RerankerFamily()


def test_the_family_is_known_by_name_and_model():
    assert get_family("reranker").model_name == "mangaassist-reranker"
    assert isinstance(family_for_model("mangaassist-reranker"), RerankerFamily)


def test_shipped_configs_equal_the_defaults():
    promote = load_config(CONFIGS / "promote_reranker.yaml", PromoteConfig)
    assert promote.family == "reranker" and promote.offline_gate_set() == FAMILY.default_offline_gates()
    assert promote.shadow_gate_set() == FAMILY.default_shadow_gates()
    monitor = load_config(CONFIGS / "monitor_reranker.yaml", MonitorConfig)
    assert monitor.trigger_set() == FAMILY.default_triggers()
    assert load_config(CONFIGS / "distill_reranker.yaml", DistillRerankerConfig) == DistillRerankerConfig()


def _title_index(title):
    return next(i for i, e in enumerate(load_catalog()) if e.title == title)


def _answer(ids):
    return {"ranking": ids, "scores": list(np.linspace(1, 0, len(ids))), "top_doc": ids[0], "top_text": ids[0]}


def test_judged_ndcg_grades_catalog_rankings_and_skips_what_it_cannot_judge():
    berserk, deluxe, naruto = (f"cat-{_title_index(t):03d}" for t in ("Berserk", "Berserk Deluxe Edition", "Naruto"))
    best, worst = judged_ndcg(["do you have berserk?"] * 2, [[berserk, deluxe, naruto], [naruto, deluxe, berserk]])
    assert best == pytest.approx(1.0) and worst < 0.7
    unjudgeable = judged_ndcg(["where is my order?", "do you have berserk?"], [[berserk], ["doc-123"]])
    assert all(np.isnan(unjudgeable))


def test_compare_top3_agreement_ndcg_delta_and_the_bucket():
    passages = catalog_passages(0)
    ids = [p.doc_id for p in passages]
    berserk, deluxe = (f"cat-{_title_index(t):03d}" for t in ("Berserk", "Berserk Deluxe Edition"))
    others = [i for i in ids if i not in (berserk, deluxe)][:8]
    texts = ["do you have berserk?", "manga by Junji Ito"]
    production = Replay([_answer([berserk, deluxe, *others]), _answer(others)], np.array([5.0, 6.0]))
    staging = Replay([_answer([others[0], berserk, deluxe, *others[1:]]), _answer(others)], np.array([2.0, 2.0]))
    traffic = type("Traffic", (), {"rows": pd.DataFrame({"text": texts, "label": ["", ""]})})()
    metrics, bucket = FAMILY.compare(production, staging, traffic, RerankerOptions())
    assert metrics["top3_agreement"] == 0.5 and metrics["disagreements"] == 1
    assert metrics["staging_ndcg_at_10"] < metrics["production_ndcg_at_10"] and metrics["ndcg_delta"] < 0
    assert list(bucket["text"]) == ["do you have berserk?"]
    observed = FAMILY.observe(production, traffic, RerankerOptions())
    assert observed["judged_queries"] >= 1 and 0 < observed["ndcg_at_10"] <= 1
