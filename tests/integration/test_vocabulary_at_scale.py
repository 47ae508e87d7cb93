"""The WordPiece trainer at scale: layout, size and uniqueness of a full vocab, the tokenizers
library's trainer as a peer on cased text, and the same vocab across dict orders and hash seeds
(subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from input_pipeline.tokenizers.wordpiece import BasicTokenizer
from input_pipeline.vocabulary.wordpiece import (
    count_words,
    held_out_statistics,
    train_wordpiece,
)
from tests.support.vocabulary_corpus import (
    tokenizer_of,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_layout_size_uniqueness(trained):
    for name, size in (("8k", 8000), ("2k", 2000)):
        tokens = trained[name]
        assert len(tokens) == size
        assert len(set(tokens)) == size
        assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        assert all(token and not any(c.isspace() for c in token) for token in tokens)
    # The 2k vocab is the 8k one truncated: learning order is kept.
    assert trained["8k"][:2000] == trained["2k"]


def test_deterministic_across_dict_order_and_hash_seeds(train_counts, trained, tmp_path):
    reordered = dict(reversed(list(train_counts.items())))
    assert train_wordpiece(reordered, 8000) == trained["8k"]
    counts_file = tmp_path / "counts.json"
    counts_file.write_text(json.dumps(dict(train_counts)), encoding="utf-8")
    script = ("import json, sys\n"
              "from input_pipeline.vocabulary.wordpiece import train_wordpiece\n"
              "counts = json.load(open(sys.argv[1], encoding='utf-8'))\n"
              "json.dump(train_wordpiece(counts, 8000), open(sys.argv[2], 'w', encoding='utf-8'))\n")
    for seed in ("1", "12345"):
        out = tmp_path / f"vocab-{seed}.json"
        env = dict(os.environ, PYTHONHASHSEED=seed,
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
        subprocess.run([sys.executable, "-c", script, str(counts_file), str(out)], check=True,
                       cwd=REPO_ROOT, env=env, timeout=120)
        assert json.loads(out.read_text(encoding="utf-8")) == trained["8k"]


def test_cased_held_out_unk_rate_and_the_tokenizers_library(docstring_corpus):
    tokenizers = pytest.importorskip("tokenizers")
    train, held_out = docstring_corpus
    ours = train_wordpiece(count_words(train, BasicTokenizer(do_lower_case=False)), 8000)
    reference = tokenizers.BertWordPieceTokenizer(lowercase=False, strip_accents=False)
    reference.train_from_iterator(train, vocab_size=8000, min_frequency=2, limit_alphabet=1000,
                                  show_progress=False)
    theirs = [reference.id_to_token(i) for i in range(reference.get_vocab_size())]
    ours_stats = held_out_statistics(tokenizer_of(ours, do_lower_case=False), held_out)
    theirs_stats = held_out_statistics(tokenizer_of(theirs, do_lower_case=False), held_out)
    print(f"\nheld-out, cased 8k vocab: ours tokens/word {ours_stats['tokens_per_word']:.4f} unk "
          f"{ours_stats['unk_rate']:.5f}; tokenizers {theirs_stats['tokens_per_word']:.4f} unk "
          f"{theirs_stats['unk_rate']:.5f}")
    assert ours_stats["unk_rate"] < 0.005
    assert ours_stats["unk_rate"] <= theirs_stats["unk_rate"] + 0.001
    assert ours_stats["tokens_per_word"] <= 1.05 * theirs_stats["tokens_per_word"]
