"""The intent classifier in the MLflow registry: its pyfunc (`pyfunc`), how it is logged and registered
with its record (`register`), and how a registered version is loaded directly for scoring (`loading`).

Which version is in which stage, and what a version carries, is the family-generic life cycle's
business (`mangadistill.lifecycle`).
"""
