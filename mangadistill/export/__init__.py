"""Deployment formats of a trained classifier (ONNX, INT8)."""
