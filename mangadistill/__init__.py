"""MangaAssist distillation core: data, losses, models, training, evaluation and registry logic.

Plain Python / PyTorch / Hugging Face / MLflow; nothing in this package imports zenml.
"""
