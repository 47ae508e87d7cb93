"""Training a SentencePiece (unigram or BPE) model with BERT's special tokens laid out as
`input_pipeline.tokenizers.sentencepiece_tokenizer` expects them; see that module for the three
choices that differ from running `spm_train` with its defaults.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Iterable, Iterator, Sequence

import sentencepiece as spm

from input_pipeline.output_file import refuse_existing_file, write_output_file
from input_pipeline.progress import Progress
from input_pipeline.text.report import InputReport
from input_pipeline.text.sources import expand_inputs, iter_lines, plain_text_bytes
from input_pipeline.tokenizers.sentencepiece_tokenizer import MODEL_TYPES, SentencePieceTokenizer
from input_pipeline.tokenizers.wordpiece import CLS, MASK, PAD, SEP, UNK

# Normalization rules shipped with SentencePiece: NFKC plus a few NMT-specific mappings, and the
# same followed by Unicode case folding.
_CASED_RULE, _LOWERCASING_RULE = "nmt_nfkc", "nmt_nfkc_cf"

# SentencePiece's own default, and a constant rather than `os.cpu_count()`: the unigram trainer's
# pieces depend on the thread count (see `sentencepiece_tokenizer`'s docstring).
DEFAULT_NUM_THREADS = 16


def train_sentencepiece(texts: Iterable[str], model_path: str | os.PathLike, vocab_size: int, *,
                        model_type: str = "unigram", lowercase: bool = True,
                        character_coverage: float = 0.9995, byte_fallback: bool = False,
                        split_digits: bool = False, max_sentences: int | None = None,
                        seed: int = 0, max_sentence_bytes: int = 4192,
                        num_threads: int = DEFAULT_NUM_THREADS, overwrite: bool = False
                        ) -> SentencePieceTokenizer:
    """Trains a SentencePiece model on `texts` and writes it, atomically, to `model_path`
    (an existing file only with `overwrite`: `input_pipeline.output_file`).

    Args:
      texts: the training sentences, one string each (typically the lines of a corpus), read
        lazily; empty ones are skipped. SentencePiece holds the sentences it trains on in memory:
        `max_sentences` bounds that.
      model_path: where to write the model (conventionally `*.model`); its directory must exist.
      vocab_size: the number of pieces, the five special tokens included.
      model_type: "unigram" (ALBERT, T5, XLNet) or "bpe".
      lowercase: whether the model lower-cases (Unicode case folding) before splitting, in
        training and in every later use of the model.
      character_coverage: the fraction of characters (by count) that get pieces of their own;
        rarer ones become `[UNK]` (or bytes, with `byte_fallback`). SentencePiece recommends
        0.9995 for languages with large character sets (Chinese, Japanese, Korean) and 1.0 for the
        others.
      byte_fallback: spell characters without a piece as UTF-8 byte pieces (`<0xE2>`, ...)
        instead of `[UNK]`; adds 256 pieces, placed right after the special tokens.
      split_digits: split numbers into single digits (as LLaMA does).
      max_sentences: train on at most this many sentences, a uniform sample drawn with `seed`
        (None: all of them).
      seed: the seed of that sample; it has no effect when every sentence is used.
      max_sentence_bytes: SentencePiece skips longer sentences (in UTF-8 bytes).
      num_threads: training threads. The unigram model depends on it, so keep it fixed to
        reproduce a model.

    Returns:
      The tokenizer of the written model.

    Raises:
      ValueError: on an unknown `model_type`, no text, or a `vocab_size` SentencePiece cannot
        fill from this text (it names the largest size it can). Whatever the `texts` iterator
        raises (e.g. `train_sentencepiece_from_files`' invalid UTF-8 error) is raised unchanged.
      FileNotFoundError: if the directory of `model_path` does not exist.
      FileExistsError: if `model_path` exists and not `overwrite` (checked before training).
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type={model_type!r}: must be one of {MODEL_TYPES}.")
    if max_sentences is not None and max_sentences < 1:
        raise ValueError(f"max_sentences={max_sentences}: must be at least 1, or None for all.")
    model_path = os.fspath(model_path)
    refuse_existing_file(model_path, overwrite)

    sentences = _NonEmpty(texts)
    if max_sentences is not None:
        sentences = _NonEmpty(_reservoir_sample(sentences, max_sentences, seed))
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model,
            model_type=model_type, vocab_size=vocab_size,
            normalization_rule_name=_LOWERCASING_RULE if lowercase else _CASED_RULE,
            character_coverage=character_coverage, byte_fallback=byte_fallback,
            split_digits=split_digits, max_sentence_length=max_sentence_bytes,
            # All the sentences given (the sample, if any, is drawn above with a seed).
            input_sentence_size=0, shuffle_input_sentence=False,
            pad_id=0, pad_piece=PAD, unk_id=1, unk_piece=UNK, bos_id=-1, eos_id=-1,
            control_symbols=[CLS, SEP, MASK],
            num_threads=num_threads, minloglevel=1)
    except RuntimeError as e:
        if sentences.error is not None:
            # SentencePiece reports an exception of the iterator as its own RuntimeError; the
            # original names the file and line.
            raise sentences.error from None
        raise _training_error(e, sentences.count, model_path, vocab_size, model_type) from e
    write_output_file(model_path, lambda f: f.write(model.getvalue()), overwrite=overwrite)
    return SentencePieceTokenizer(model_path)


def _training_error(error: RuntimeError, num_sentences: int, model_path: str, vocab_size: int,
                    model_type: str) -> ValueError:
    """SentencePiece's `error` while training on `num_sentences` sentences, said to a user."""
    if num_sentences == 0:
        return ValueError(f"no text to train {model_path} on: every sentence given was empty.")
    reason = str(error).rstrip(".")
    if "all_chars_count" in reason:  # SentencePiece's check that some character is left to train on
        return ValueError(f"no character to train {model_path} on in {num_sentences} sentences: "
                          "they hold only whitespace, control or zero-width characters. Give text.")
    return ValueError(f"SentencePiece could not train {model_path} ({vocab_size} pieces, "
                      f"{model_type}, on {num_sentences} sentences): {reason}. Lower "
                      f"vocab_size or train on more text.")


def train_sentencepiece_from_files(paths: Sequence[str | os.PathLike],
                                   model_path: str | os.PathLike, vocab_size: int, *,
                                   text_field: str = "text", report: InputReport | None = None,
                                   **options) -> SentencePieceTokenizer:
    """Trains a SentencePiece model on text inputs (files, globs, directories, `.gz`, `.jsonl`,
    `tfds:NAME[:SPLIT]`, read by `text_sources`; blank lines between documents are skipped); see
    `train_sentencepiece` for `options`. With a `report`, bad input (binary files, invalid UTF-8,
    bad JSON Lines records, ...) is skipped and counted there, or, if it is strict, an error
    naming file and line (`InputReport`); without one, invalid UTF-8 is an error.

    Raises:
      FileNotFoundError: if an input is missing (checked before any reading).
      FileExistsError: if `model_path` exists and not `overwrite` (checked before any reading).
      ValueError: on invalid UTF-8 (naming file and line), or as `train_sentencepiece`.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ValueError("train_sentencepiece_from_files needs at least one input file.")
    refuse_existing_file(model_path, options.get("overwrite", False))
    sources = expand_inputs([os.fspath(p) for p in paths], report)
    lines = (line for source in sources
             for line in iter_lines(source, text_field=text_field, report=report))
    # The bar covers the reading; SentencePiece's training itself (in C++) says nothing on the way.
    with Progress("vocab: reading for SentencePiece", plain_text_bytes(sources), unit="B",
                  unit_scale=True) as reading:
        tokenizer = train_sentencepiece(reading.lines(lines), model_path, vocab_size, **options)
        reading.close(f"{model_path}", read_all=True)
    return tokenizer


class _NonEmpty:
    """Iterates over the non-blank strings of `texts` (each newline-free), counting them and
    keeping any exception the source raises, which SentencePiece would otherwise replace."""

    def __init__(self, texts: Iterable[str]):
        self._texts = texts
        self.count = 0
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[str]:
        try:
            for text in self._texts:
                if not isinstance(text, str):
                    raise TypeError(f"training texts must be str, got {type(text).__name__}: "
                                    f"{text!r:.80}; to train on files, use "
                                    f"train_sentencepiece_from_files.")
                text = text.strip()
                if text:
                    self.count += 1
                    yield text
        except GeneratorExit:
            raise
        except BaseException as e:  # KeyboardInterrupt too: SentencePiece would swallow it.
            self.error = e
            raise


def _reservoir_sample(texts: Iterable[str], size: int, seed: int) -> list[str]:
    """A uniform sample of `size` texts (all of them if fewer), in their original order, holding
    only `size` texts in memory at a time (Algorithm R)."""
    rng = random.Random(seed)
    kept: list[tuple[int, str]] = []
    for index, text in enumerate(texts):
        if index < size:
            kept.append((index, text))
        else:
            slot = rng.randrange(index + 1)
            if slot < size:
                kept[slot] = (index, text)
    return [text for _, text in sorted(kept)]

