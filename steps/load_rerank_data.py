"""Step: the reranking dataset (generated from the catalog, or read from JSONL / TREC files), split by query group."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from mangadistill.config import RerankDataConfig
from mangadistill.reranker.dataset import RerankDataset, generate_dataset, read_jsonl_lists, read_trec
from steps._context import compute_timer, log_output_metadata


def load_dataset(config: RerankDataConfig) -> RerankDataset:
    split = {"val_fraction": config.val_fraction, "gate_fraction": config.gate_fraction, "split_seed": config.split_seed}
    if config.source == "jsonl":
        return read_jsonl_lists(config.path, **split)
    if config.source == "trec":
        return read_trec(config.path, config.corpus_path, config.queries_path, k=config.k, **split)
    generated = config.generated
    return generate_dataset(generated.n_queries, generated.seed, k=config.k, hard_negatives=generated.hard_negatives,
                            transfer_queries=generated.transfer_queries, **split)


@step
def load_rerank_data(config: RerankDataConfig) -> Annotated[RerankDataset, "rerank_dataset"]:
    """Queries with K graded candidates each; bad rows quarantined and counted (see `mangadistill.reranker.dataset`)."""
    with compute_timer():
        dataset = load_dataset(config)
    log_output_metadata({f"{k}_counts": v for k, v in dataset.counts().items()} | {"fingerprint": dataset.fingerprint()})
    return dataset
