"""Vocabulary trimming of a WordPiece (BERT-style) student: keep the pieces its traffic needs.

The word-embedding matrix of a small BERT dominates its size (MiniLM: 30,522 x 384 = 11.7M of 22.7M
parameters; 3 kept layers add only 5.3M). A shop assistant's queries use a few thousand pieces, so the
student keeps, in the teacher's vocabulary order:

1. the special tokens (``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]``);
2. every single-character piece and its ``##`` continuation, so any word still tokenises (into smaller
   pieces) instead of becoming ``[UNK]``;
3. every piece the training corpus uses, so the training rows tokenise exactly as with the full
   vocabulary (WordPiece takes the longest matching prefix; no piece it chose is removed);
4. the earliest remaining pieces of the vocabulary (WordPiece vocabularies list frequent pieces first)
   until `size` pieces are kept. ``[unused*]`` placeholders are dropped.

The embedding rows are copied, not retrained, so the trimmed student is the same function as before on
any text whose pieces were all kept.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from mangadistill.errors import ConfigError


@dataclass(frozen=True)
class VocabularyTrim:
    """What trimming kept: sizes before and after, and how many pieces the corpus needed."""

    original_size: int
    kept_size: int
    corpus_pieces: int
    single_characters: int

    def describe(self) -> str:
        return (f"vocabulary {self.original_size} -> {self.kept_size} pieces "
                f"({self.corpus_pieces} used by the training corpus, {self.single_characters} single characters)")


def _is_single_character(piece: str) -> bool:
    return len(piece.removeprefix("##")) == 1


def select_vocabulary(tokenizer: PreTrainedTokenizerBase, corpus: Sequence[str], size: int) -> tuple[list[int], VocabularyTrim]:
    """Ids of the pieces to keep, in the original order (see the module docstring for the rule)."""
    vocab = tokenizer.get_vocab()
    by_id = sorted(vocab.items(), key=lambda item: item[1])
    special = set(tokenizer.all_special_ids)
    characters = {i for piece, i in by_id if _is_single_character(piece)}
    used: set[int] = set()
    for ids in tokenizer(list(corpus), add_special_tokens=False)["input_ids"]:
        used.update(ids)
    required = special | characters | used
    if size < len(required):
        raise ConfigError(
            f"student.vocab_size: {size} is below the {len(required)} pieces the training corpus and single "
            f"characters need; raise it to at least {len(required)} or unset it"
        )
    keep = set(required)
    for piece, i in by_id:
        if len(keep) >= size:
            break
        if not piece.startswith("[unused"):
            keep.add(i)
    ids = sorted(keep)
    return ids, VocabularyTrim(len(vocab), len(ids), len(used), len(characters))


def trim_vocabulary(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, corpus: Sequence[str], size: int
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, VocabularyTrim]:
    """Shrink `model`'s word embeddings and `tokenizer` to `size` pieces chosen by `select_vocabulary`.

    Works for tokenizers that save a WordPiece ``vocab.txt`` (BERT, MiniLM, TinyBERT); others fail with
    a `ConfigError` saying to unset ``student.vocab_size``.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.model).__name__ != "WordPiece":
        raise ConfigError(
            f"student.vocab_size: trimming needs a WordPiece (BERT-style) tokenizer, not "
            f"{type(tokenizer).__name__}; unset student.vocab_size"
        )
    keep, report = select_vocabulary(tokenizer, corpus, size)
    by_id = {i: piece for piece, i in tokenizer.get_vocab().items()}
    with tempfile.TemporaryDirectory(prefix="vocab-") as folder:
        tokenizer.save_pretrained(folder)
        Path(folder, "tokenizer.json").unlink(missing_ok=True)  # rebuilt from vocab.txt on load
        settings_path = Path(folder, "tokenizer_config.json")
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        settings.pop("added_tokens_decoder", None)  # it pins the special tokens to their old ids
        settings_path.write_text(json.dumps(settings), encoding="utf-8")
        Path(folder, "vocab.txt").write_text("".join(by_id[i] + "\n" for i in keep), encoding="utf-8")
        trimmed_tokenizer = AutoTokenizer.from_pretrained(folder)

    old = model.get_input_embeddings()  # (V, H)
    new = torch.nn.Embedding(len(keep), old.embedding_dim, padding_idx=trimmed_tokenizer.pad_token_id)
    with torch.no_grad():
        new.weight.copy_(old.weight[torch.tensor(keep)])  # (V', H)
    model.set_input_embeddings(new)
    model.config.vocab_size = len(keep)
    model.config.pad_token_id = trimmed_tokenizer.pad_token_id
    return model, trimmed_tokenizer, report


def token_id_map(
    student: PreTrainedTokenizerBase, teacher: PreTrainedTokenizerBase, texts: Sequence[str], sample: int = 500
) -> torch.Tensor | None:
    """Student token id -> teacher token id, for running the teacher on the student's batches.

    Layer matching compares position by position, so both models must split every training text into
    the same pieces; a trimmed vocabulary does (same pieces, new ids), and so do two WordPiece
    vocabularies that differ only in ids and special tokens (BERT's [CLS]/[SEP] vs MPNet's <s>/</s>,
    mapped by role). Returns None when the ids are already the teacher's. Raises `ConfigError` when the
    tokenizers split text differently: feature and attention KD across tokenizers is undefined,
    logit-only KD is not affected.
    """
    for text in list(texts)[:sample]:
        s_pieces, t_pieces = student.tokenize(text), teacher.tokenize(text)
        if s_pieces != t_pieces:
            raise ConfigError(
                f"feature/attention KD needs the student to tokenize like the teacher, but {text[:60]!r} splits into "
                f"{s_pieces[:8]} (student) vs {t_pieces[:8]} (teacher): set student.stage1.enabled: false and "
                "student.stage2.kd.feature_weight/attention_weight: 0 for logit-only KD"
            )
    pieces = student.convert_ids_to_tokens(list(range(len(student))))
    teacher_ids = teacher.convert_tokens_to_ids(pieces)
    for role in ("cls_token", "sep_token", "pad_token", "unk_token", "mask_token"):  # e.g. [CLS] -> <s> (MPNet)
        s_token, t_token = getattr(student, role, None), getattr(teacher, role, None)
        if s_token is not None and t_token is not None:
            teacher_ids[student.convert_tokens_to_ids(s_token)] = teacher.convert_tokens_to_ids(t_token)
    # Pieces the teacher lacks (e.g. BERT's [unused*]) never occur in the texts checked above; they map to unknown.
    mapping = torch.tensor(teacher_ids, dtype=torch.long)
    return None if torch.equal(mapping, torch.arange(len(mapping))) else mapping
