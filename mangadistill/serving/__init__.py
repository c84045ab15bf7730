"""HTTP serving of the registry's production intent classifier (FastAPI), following stage changes live."""
