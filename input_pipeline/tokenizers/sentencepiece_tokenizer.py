"""SentencePiece (unigram or BPE) as the alternative to WordPiece, ALBERT and multilingual style.

`train_sentencepiece` trains a model with the `sentencepiece` library and lays out the special
tokens as BERT expects them: `[PAD]` = 0, `[UNK]` = 1, `[CLS]` = 2, `[SEP]` = 3, `[MASK]` = 4.
`SentencePieceTokenizer` wraps a trained model in the protocol of the WordPiece `BertTokenizer`
(`vocab`, `mask_id`, `special_ids`, `is_continuation`, `encode`, `decode`, ...), so that it can be
used wherever a WordPiece vocab is: creating pretraining data, masking (whole-word masking
included), fill-mask and training. `tokenization.load_tokenizer` picks one or the other from the
file it is given.

Three choices differ from running `spm_train` with its defaults:

* `[PAD]` is the pad piece, `[UNK]` the unknown piece, and `[CLS]`, `[SEP]` and `[MASK]` are
  control symbols (as in ALBERT's model), never user-defined ones: SentencePiece never produces a
  control symbol from text, so a "[SEP]" quoted in a corpus stays text. A special token typed in a
  prompt is found by `encode` itself, as `BertTokenizer` does.
* Lower-casing is a property of the model, not of the code that uses it: `lowercase=True` trains
  with the `nmt_nfkc_cf` normalization rule (NFKC, then Unicode case folding), which is stored in
  the `.model` file and applied by every SentencePiece implementation that reads it, so training
  and encoding cannot disagree.
* Training is reproducible: the same text and options give the same model bytes. SentencePiece's
  own sentence sampling (`input_sentence_size`) gives a different sample in every process, even
  after `set_random_generator_seed`, so sampling is done here instead, with a seeded reservoir;
  the model is written from memory, so no temporary path ends up in it; and the thread count is
  fixed rather than taken from the machine, because the unigram trainer's floating-point sums
  (so its pieces) depend on it.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable

import numpy as np
import sentencepiece as spm

from input_pipeline.tokenizers.wordpiece import CLS, MASK, PAD, SEP, SPECIAL_TOKENS, UNK, SpecialTokenIds

MODEL_TYPES = ("unigram", "bpe")

# The word-start marker: SentencePiece writes each space as this character, glued to the piece
# that follows it.
WORD_START = "\u2581"


class SentencePieceTokenizer(SpecialTokenIds):
    """Text to SentencePiece ids, with `BertTokenizer`'s interface.

    The ids are `SentencePieceProcessor.encode`'s. `do_lower_case` states what the caller expects:
    None accepts the model as it is; True or False must match whether the model lower-cases
    (which is fixed when it is trained), and a mismatch raises `ValueError` rather than silently
    feeding the model text unlike what it was trained on.
    """

    def __init__(self, model_path: str | os.PathLike, do_lower_case: bool | None = None):
        self.model_path = os.fspath(model_path)
        try:
            with open(self.model_path, "rb") as f:
                model_proto = f.read()
        except IsADirectoryError:
            raise IsADirectoryError(f"{self.model_path} is a directory; pass the SentencePiece "
                                    f".model file.") from None
        self._load(model_proto, do_lower_case)

    def _load(self, model_proto: bytes, do_lower_case: bool | None) -> None:
        self._model_proto = model_proto
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(model_proto)
        except (RuntimeError, OSError) as e:
            raise ValueError(f"{self.model_path}: not a SentencePiece model ({e}); train one with "
                             f"train_sentencepiece.") from None
        self._sp = processor
        self._pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        self.vocab = {piece: index for index, piece in enumerate(self._pieces)}
        self._check_special_tokens()

        # Probed rather than read from the model's normalizer spec: the processor applies
        # whatever rule the file holds, and this is what the text actually goes through.
        self.model_lowercases = processor.normalize("AZ").lstrip(WORD_START) == "az"
        if do_lower_case is not None and do_lower_case != self.model_lowercases:
            what = "lower-cases" if self.model_lowercases else "keeps case"
            raise ValueError(
                f"{self.model_path}: do_lower_case={do_lower_case}, but this SentencePiece model "
                f"{what} (that is fixed when it is trained: train_sentencepiece(lowercase=...)). "
                f"Set do_lower_case={self.model_lowercases} or leave it unset (None), or use a "
                f"model trained the other way.")
        self._special_re = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")

    def _check_special_tokens(self) -> None:
        """Refuses models without BERT's special pieces, or with ones that text can produce."""
        sp = self._sp
        missing = [t for t in SPECIAL_TOKENS if t not in self.vocab]
        if missing:
            raise ValueError(f"{self.model_path}: the model lacks the special pieces {missing}; a "
                             f"BERT model needs all of {list(SPECIAL_TOKENS)}. Train it with "
                             f"train_sentencepiece, which lays them out.")
        if self.vocab[UNK] != sp.unk_id():
            raise ValueError(f"{self.model_path}: {UNK} is not the model's unknown piece (that is "
                             f"{self._pieces[sp.unk_id()]!r}, id {sp.unk_id()}); train the model "
                             f"with train_sentencepiece.")
        textual = [t for t in (PAD, CLS, SEP, MASK) if not sp.is_control(self.vocab[t])]
        if textual:
            raise ValueError(f"{self.model_path}: {textual} are ordinary or user-defined pieces, "
                             f"which SentencePiece produces from text (a quoted \"[SEP]\" would "
                             f"split a training pair); they must be control symbols. Train the "
                             f"model with train_sentencepiece.")

    def __getstate__(self) -> dict:
        # The processor is a C++ object; the model bytes rebuild it (for worker processes).
        return {"model_path": self.model_path, "model_proto": self._model_proto}

    def __setstate__(self, state: dict) -> None:
        self.model_path = state["model_path"]
        self._load(state["model_proto"], None)

    @property
    def do_lower_case(self) -> bool:
        """Whether text is lower-cased (by the model's normalization) before it is split."""
        return self.model_lowercases

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    @functools.cached_property
    def is_continuation(self) -> np.ndarray:
        """`is_continuation[id]` is True for a piece that continues the previous piece's word:
        one that does not start with the word-start marker "▁". Whole-word masking groups such
        pieces with the word they belong to.

        The control symbols are False. `[UNK]` is True: SentencePiece gives an unknown character
        no marker of its own (a word starting with one is "▁", `[UNK]`, ...; "a☠b" is "▁a",
        `[UNK]`, "b"), so it always continues a word, as the byte pieces of `byte_fallback` do.
        """
        sp = self._sp
        flags = np.zeros(len(self._pieces), dtype=bool)
        for index, piece in enumerate(self._pieces):
            flags[index] = not sp.is_control(index) and not piece.startswith(WORD_START)
        return flags

    def encode(self, text: str, split_special_tokens: bool = False) -> list[int]:
        """Returns the ids of `text`, without `[CLS]`/`[SEP]`.

        A special token written in the text ("[MASK]") is that token, as in `transformers`, and
        the text on each side of it is encoded on its own (each starting a word); with
        `split_special_tokens` it is plain text ("▁[", "mask", "]"), as corpus text must be.
        """
        if split_special_tokens or "[" not in text:
            return self._sp.encode(text)
        ids: list[int] = []
        for index, part in enumerate(self._special_re.split(text)):
            if index % 2:
                ids.append(self.vocab[part])
            elif part:
                ids.extend(self._sp.encode(part))
        return ids

    def tokenize(self, text: str, split_special_tokens: bool = False) -> list[str]:
        """Returns the pieces of `text` (see `encode` for `split_special_tokens`); an unknown
        character is `[UNK]`."""
        return self.convert_ids_to_tokens(self.encode(text, split_special_tokens))

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        """Ids of `tokens`; a token not in the vocab becomes `[UNK]`'s id."""
        unk = self.vocab[UNK]
        return [self.vocab.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """Pieces of `ids`; raises `KeyError` on an id outside the vocab."""
        return [self._pieces[self._check_id(i)] for i in ids]

    def _check_id(self, token_id: int) -> int:
        token_id = int(token_id)
        if not 0 <= token_id < len(self._pieces):  # A negative index would wrap around.
            raise KeyError(f"id {token_id} is outside the vocab of {self.model_path} "
                           f"(0 to {len(self._pieces) - 1}).")
        return token_id

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Joins ids back into (normalized) text: "▁" becomes a space, byte pieces become their
        characters.

        Special tokens are written as themselves ("[MASK]"), separated by spaces from the text
        around them, or left out with `skip_special_tokens` (SentencePiece's own decoder drops
        control symbols and writes `[UNK]` as " ⁇ ").
        """
        special = self.special_ids
        parts: list[str] = []
        run: list[int] = []
        for token_id in ids:
            token_id = self._check_id(token_id)
            if token_id in special:
                if run:
                    parts.append(self._sp.decode(run))
                    run = []
                if not skip_special_tokens:
                    parts.append(self._pieces[token_id])
            else:
                run.append(token_id)
        if run:
            parts.append(self._sp.decode(run))
        return " ".join(part for part in parts if part)
