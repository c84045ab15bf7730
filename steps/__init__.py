"""ZenML steps: thin adapters that call into `mangadistill` and log what they did."""

from steps.act_on_triggers import act_on_triggers
from steps.advance_rollout import advance_rollout
from steps.augment_intent_data import augment_intent_data
from steps.assemble_response_dataset import assemble_response_dataset
from steps.benchmark_serving import benchmark_serving
from steps.bootstrap_production import bootstrap_production
from steps.build_response_prompts import build_response_prompts
from steps.check_drift import check_drift
from steps.check_production import check_production
from steps.clean_intent_data import clean_intent_data
from steps.describe_queries import describe_queries
from steps.evaluate_finetune_checkpoints import evaluate_finetune_checkpoints
from steps.evaluate_managed_responder import evaluate_managed_responder
from steps.evaluate_models import evaluate_models
from steps.evaluate_rerankers import evaluate_rerankers
from steps.evaluate_responders import evaluate_responders
from steps.evaluate_shadow import evaluate_shadow
from steps.export_rerank_student import export_rerank_student
from steps.export_responder import export_responder
from steps.export_student import export_student
from steps.gate_candidate import gate_candidate
from steps.generate_teacher_answers import generate_teacher_answers
from steps.label_with_teacher import label_with_teacher
from steps.load_intent_data import load_intent_data
from steps.load_reference_data import load_reference_data
from steps.load_rerank_data import load_rerank_data
from steps.load_traffic_log import load_traffic_log
from steps.predict_intents import predict_intents
from steps.prepare_finetune_files import prepare_finetune_files
from steps.prepare_response_student import prepare_response_student
from steps.recommend_retraining import recommend_retraining
from steps.register_managed_responder import register_managed_responder
from steps.register_reranker import register_reranker
from steps.register_responder import register_responder
from steps.register_student import register_student
from steps.report_drift import report_drift
from steps.rollback_production import rollback_production
from steps.run_finetune_job import run_finetune_job
from steps.score_with_rerank_teacher import score_with_rerank_teacher
from steps.select_candidate import select_candidate
from steps.train_rerank_student import train_rerank_student
from steps.train_rerank_teacher import train_rerank_teacher
from steps.train_responder import train_responder
from steps.train_student import train_student
from steps.train_teacher import train_teacher

__all__ = [
    "act_on_triggers",
    "advance_rollout",
    "augment_intent_data",
    "assemble_response_dataset",
    "benchmark_serving",
    "bootstrap_production",
    "build_response_prompts",
    "check_drift",
    "check_production",
    "clean_intent_data",
    "describe_queries",
    "evaluate_finetune_checkpoints",
    "evaluate_managed_responder",
    "evaluate_models",
    "evaluate_rerankers",
    "evaluate_responders",
    "evaluate_shadow",
    "export_rerank_student",
    "export_responder",
    "export_student",
    "gate_candidate",
    "generate_teacher_answers",
    "label_with_teacher",
    "load_intent_data",
    "load_reference_data",
    "load_rerank_data",
    "load_traffic_log",
    "predict_intents",
    "prepare_finetune_files",
    "prepare_response_student",
    "recommend_retraining",
    "register_managed_responder",
    "register_reranker",
    "register_responder",
    "register_student",
    "report_drift",
    "rollback_production",
    "run_finetune_job",
    "score_with_rerank_teacher",
    "select_candidate",
    "train_rerank_student",
    "train_rerank_teacher",
    "train_responder",
    "train_student",
    "train_teacher",
]
