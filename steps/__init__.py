"""ZenML steps: thin adapters that call into `mangadistill` and log what they did."""

from steps.benchmark_serving import benchmark_serving
from steps.clean_intent_data import clean_intent_data
from steps.evaluate_models import evaluate_models
from steps.export_student import export_student
from steps.label_with_teacher import label_with_teacher
from steps.load_intent_data import load_intent_data
from steps.register_student import register_student
from steps.train_student import train_student
from steps.train_teacher import train_teacher

__all__ = [
    "benchmark_serving",
    "clean_intent_data",
    "evaluate_models",
    "export_student",
    "label_with_teacher",
    "load_intent_data",
    "register_student",
    "train_student",
    "train_teacher",
]
