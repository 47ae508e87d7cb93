"""Cutting examples to the model's length, and the report that counts every cut: truncation is
never silent.

Pairs are cut as BERT's `run_classifier.py` cuts them (`_truncate_seq_pair`): one token at a time
from the end of the longer text, the second text when they are equally long. Hugging Face's
`truncation="longest_first"` (the `tokenizers` library, used by `run_glue.py`) keeps the same
lengths except when both texts must be cut to about half: with an odd budget, BERT gives the
extra token to the first text and `tokenizers` to the second (texts of 10 and 10 tokens into 15:
BERT 8 + 7, Hugging Face 7 + 8). `PAIR_TRUNCATIONS` offers both; the tests hold each to its
source.
"""

from __future__ import annotations

import dataclasses

from input_pipeline.tasks.records import Location

PAIR_TRUNCATIONS = ("google", "huggingface")


def truncate_pair(tokens_a: list, tokens_b: list, max_tokens: int, rule: str = "google") -> int:
    """Cuts `tokens_a` and `tokens_b` in place to at most `max_tokens` together; returns how many
    tokens were cut. `rule`: "google" (BERT's `_truncate_seq_pair`) or "huggingface"
    (`tokenizers`' longest_first)."""
    total = len(tokens_a) + len(tokens_b)
    if total <= max_tokens:
        return 0
    if rule == "google":
        while len(tokens_a) + len(tokens_b) > max_tokens:
            (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()
    elif rule == "huggingface":
        keep_a, keep_b = _longest_first_lengths(len(tokens_a), len(tokens_b), max_tokens)
        del tokens_a[keep_a:], tokens_b[keep_b:]
    else:
        raise ValueError(f"pair truncation {rule!r} is not one of {PAIR_TRUNCATIONS}.")
    return total - len(tokens_a) - len(tokens_b)


def _longest_first_lengths(n_a: int, n_b: int, max_tokens: int) -> tuple[int, int]:
    """The lengths `tokenizers` keeps (`TruncationStrategy::LongestFirst` in its
    utils/truncation.rs): the shorter text whole if it fits in half, else both about half, the
    second text (after putting the shorter first) taking the odd token."""
    swap = n_a > n_b
    short, long = (n_b, n_a) if swap else (n_a, n_b)
    long = short if short > max_tokens else max(short, max_tokens - short)
    if short + long > max_tokens:
        short = max_tokens // 2
        long = short + max_tokens % 2
    return (long, short) if swap else (short, long)


@dataclasses.dataclass
class TruncationReport:
    """What fitting examples into `max_seq_length` tokens cost: how many examples were cut and
    how many tokens they lost; for tagging also the words that lost their first sub-token (so
    have no prediction) and the words that yield no sub-token at all (spaces, control
    characters), which cannot be predicted either."""
    max_seq_length: int
    examples: int = 0
    truncated_examples: int = 0
    tokens_cut: int = 0
    words: int = 0
    words_cut: int = 0
    words_without_tokens: int = 0
    first_truncated: Location | None = None

    def add(self, location: Location, tokens_cut: int) -> None:
        """Counts one example that lost `tokens_cut` tokens (0: none)."""
        self.examples += 1
        if tokens_cut:
            self.truncated_examples += 1
            self.tokens_cut += tokens_cut
            if self.first_truncated is None:
                self.first_truncated = location

    def summary(self) -> str:
        """One line for the log."""
        text = (f"{self.truncated_examples:,} of {self.examples:,} examples truncated to "
                f"{self.max_seq_length} tokens ({self.tokens_cut:,} tokens cut")
        if self.first_truncated is not None:
            text += f"; the first at {self.first_truncated}"
        text += ")"
        if self.words:
            text += (f"; {self.words_cut:,} of {self.words:,} words cut off, "
                     f"{self.words_without_tokens:,} without any token (not predicted)")
        return text + "."
