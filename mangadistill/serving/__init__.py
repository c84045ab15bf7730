"""HTTP serving of a family's production model from the registry (FastAPI), following alias moves live."""
