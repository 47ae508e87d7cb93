"""Tiny fine-tuning inputs written by the tests: a random BERT (hidden 32, 2 layers) exported as a
Hugging Face directory with its vocab, and small files of each task's layout whose labels follow
from the words (so a few steps learn something), each set not a multiple of the batch."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ("the cat dog sat ran on mat big small red blue john paris london likes hates good bad "
         "what where who is").split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
MODEL = dict(vocab_size=len(VOCAB), hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
             max_position_embeddings=64)


def write_tiny_model(root: Path) -> Path:
    """A Hugging Face directory of a random tiny BERT (`MODEL`) with the vocab `VOCAB`."""
    from bert_jax.convert.hf_export import export_to_huggingface
    from bert_jax.convert.imported import initial_params
    from bert_jax.model import BertConfig

    (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    config = BertConfig(**MODEL)
    return export_to_huggingface(initial_params(config), config, root / "vocab.txt", True, root / "model")


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_classification(path: Path, n: int, seed: int) -> None:
    """JSON Lines sentence pairs, labelled "pos" if the first holds "good", else "neg"."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            a = _sentence(rng, rng.randint(3, 8))
            f.write(json.dumps({"sentence1": a, "sentence2": _sentence(rng, 3),
                                "label": "pos" if "good" in a else "neg"}) + "\n")


def write_regression(path: Path, n: int, seed: int) -> None:
    """A TSV of pairs scored by how many words they share (0 to 5)."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        f.write("sentence1\tsentence2\tlabel\n")
        for _ in range(n):
            a, b = _sentence(rng, 4), _sentence(rng, 5)
            f.write(f"{a}\t{b}\t{min(5, len(set(a.split()) & set(b.split())))}\n")


def write_tagging(path: Path, n: int, seed: int) -> None:
    """CoNLL columns: "john" a person, "paris" and "london" places, the rest O."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            for word in _sentence(rng, rng.randint(3, 7)).split():
                tag = "B-PER" if word == "john" else "B-LOC" if word in ("paris", "london") else "O"
                f.write(f"{word} {tag}\n")
            f.write("\n")


def write_squad(path: Path, n: int, seed: int) -> None:
    """SQuAD v1.1 JSON: contexts of 20 words, the answer the sixth."""
    rng = random.Random(seed)
    articles = []
    for i in range(n):
        words = _sentence(rng, 20).split()
        start = len(" ".join(words[:5])) + 1
        articles.append({"title": "t", "paragraphs": [{"context": " ".join(words), "qas": [
            {"id": f"q{i}", "question": _sentence(rng, 4),
             "answers": [{"text": words[5], "answer_start": start}]}]}]})
    path.write_text(json.dumps({"version": "1.1", "data": articles}))
