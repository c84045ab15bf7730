"""Response distillation (runbook 7-8): teacher answers -> LoRA SFT of a small causal LM -> rubric evaluation.

Modules, in the order data flows through them:

- `chat`: the one chat layout (system prompt, retrieval context, shopper prompt) every model sees, and the
  `ChatModel` protocol any answerer implements (reference teacher, fine-tuned student, remote endpoint).
- `catalog`, `retriever`: the store's catalog and policies as retrievable documents, and the retriever.
- `dataset`: the response dataset (row types and weights of runbook 7.3, splits of 3.2, bring-your-own JSONL).
- `reference_teacher`: the deterministic, catalog-grounded responder that stands in for gpt-4.1 offline.
- `teacher_client`: teacher generation through the official `openai` client, cached and resumable.
- `rubric`, `judge`: the 7.5 rubric, hallucination rate (18.4), refusal/escalation metrics, preference judges.
- `student`, `sft`, `generation`: the student base model, LoRA SFT with trl, batched generation.
"""
