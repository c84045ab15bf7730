"""OpenAI-style fine-tuning: chat JSONL files (build, validate, estimate), the client workflow that runs a
supervised job at any OpenAI-compatible base URL, and the job store and worker behind the project's own
fine-tuning server (`mangadistill.serving.openai_server`). Never imports zenml."""
