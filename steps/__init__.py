"""ZenML steps: thin adapters that call into `mangadistill` and log what they did."""

from steps.benchmark_serving import benchmark_serving
from steps.clean_intent_data import clean_intent_data
from steps.describe_queries import describe_queries
from steps.evaluate_models import evaluate_models
from steps.export_student import export_student
from steps.label_with_teacher import label_with_teacher
from steps.load_intent_data import load_intent_data
from steps.load_reference_data import load_reference_data
from steps.load_traffic_log import load_traffic_log
from steps.predict_intents import predict_intents
from steps.recommend_retraining import recommend_retraining
from steps.register_student import register_student
from steps.report_drift import report_drift
from steps.train_student import train_student
from steps.train_teacher import train_teacher

__all__ = [
    "benchmark_serving",
    "clean_intent_data",
    "describe_queries",
    "evaluate_models",
    "export_student",
    "label_with_teacher",
    "load_intent_data",
    "load_reference_data",
    "load_traffic_log",
    "predict_intents",
    "recommend_retraining",
    "register_student",
    "report_drift",
    "train_student",
    "train_teacher",
]
