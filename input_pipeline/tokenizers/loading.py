"""The tokenizer for a vocab file, whichever kind it is: a WordPiece `vocab.txt` or a
SentencePiece model.
"""

from __future__ import annotations

import os

from input_pipeline import remote_files
from input_pipeline.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer
from input_pipeline.tokenizers.wordpiece import BertTokenizer, load_vocab

# WordPiece's limit on word length; SentencePiece has none, so `load_tokenizer` drops it for a
# SentencePiece model (callers pass it whatever the file).
_WORDPIECE_ONLY_OPTIONS = ("max_input_chars_per_word",)


def load_tokenizer(path: str | os.PathLike, **kwargs) -> BertTokenizer | SentencePieceTokenizer:
    """The tokenizer for a vocab file: a `BertTokenizer` for a WordPiece `vocab.txt` (UTF-8, one
    token per line), a `sentencepiece_tokenizer.SentencePieceTokenizer` for a SentencePiece model
    (a `.model` file, or any file that is binary rather than text).

    `kwargs` go to the tokenizer's constructor. A SentencePiece model takes `do_lower_case` (None,
    or what the model does: lower-casing is fixed when it is trained, and a mismatch raises);
    `max_input_chars_per_word`, a WordPiece limit, is ignored for it.

    Raises:
      FileNotFoundError / IsADirectoryError: if `path` is not a file.
      ValueError: naming the file, if it is neither a usable vocab.txt nor a SentencePiece model.
    """
    path = os.fspath(path)
    if remote_files.isdir(path):
        raise IsADirectoryError(f"{path} is a directory; pass its vocab.txt (WordPiece) or its "
                                f".model file (SentencePiece).")
    if not remote_files.isfile(path):
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    with remote_files.open_file(path, "rb") as f:
        head = f.read(65536)
    try:
        head.decode("utf-8")
        is_text = True
    except UnicodeDecodeError as e:
        # A character cut in two by the read limit is still text.
        is_text = e.reason == "unexpected end of data" and e.start >= len(head) - 3
    # A SentencePiece model is a protobuf, full of zero bytes (its scores); text has none.
    is_text = is_text and b"\0" not in head

    if path.endswith(".model") or not is_text:
        options = {k: v for k, v in kwargs.items() if k not in _WORDPIECE_ONLY_OPTIONS}
        try:
            return SentencePieceTokenizer(path, **options)
        except ValueError as e:
            if path.endswith(".model"):
                raise
            # Its message names the file; say why it was not read as a vocab.txt either.
            raise ValueError(f"{e} (It is not UTF-8 text, so not a WordPiece vocab.txt "
                             f"either.)") from None
    if path.endswith(".json"):
        raise ValueError(f"{path}: a JSON file is not a vocab; pass a WordPiece vocab.txt (one "
                         f"token per line; a Hugging Face export has one next to tokenizer.json) "
                         f"or a SentencePiece .model file.")
    vocab = load_vocab(path)
    try:
        return BertTokenizer(vocab, **kwargs)
    except ValueError as e:
        raise ValueError(f"{path}: {e} Pass a WordPiece vocab.txt made by `bert-jax vocab` or a "
                         f"SentencePiece .model file.") from None

