"""Model folders for tests: a tiny BERT text model in the ``SYNIB_MODEL_DIR`` layout, built
here (a random 1-layer BERT of width 32 and a hand-written WordPiece vocabulary; nothing is
downloaded), and the manifest alone for tests that only need discovery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WORDS = ["the", "cat", "dog", "sat", "on", "mat", "good", "bad", "movie", "was", "not"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
HIDDEN = 32


def write_manifest(folder: Path, **fields: Any) -> Path:
    """``folder/synib-model.json`` with a text model's defaults, overridden by ``fields``."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"modality": "text", "licence": "MIT", "loader": "transformers", **fields}
    (folder / "synib-model.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def tiny_bert(folder: Path, description: str = "a 1-layer BERT for tests") -> Path:
    """A loadable Hugging Face BERT (``BertModel`` weights, config, fast tokenizer) of hidden
    size ``HIDDEN`` in ``folder``, with its ``synib-model.json`` (text, transformers)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokens = SPECIAL + WORDS
    config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=HIDDEN,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    # transformers 5: the tokenizers-backed BertTokenizer takes the vocabulary as a dict.
    BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}).save_pretrained(folder)
    return write_manifest(folder, description=description)
