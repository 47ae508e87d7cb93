"""Fill-mask inference: the top-k tokens for every `[MASK]` in a text, with their scores, in the
form `transformers`' `pipeline("fill-mask")` returns them (`score`, `token`, `token_str`,
`sequence`).

Texts are batched and padded to bucket shapes (`bert_jax.inference`), and the number of masks per
text rounds up to a power of two too, so a stream of requests compiles a handful of programs, not
one per input.

With a SentencePiece vocab, `token_str` and `sequence` are decoded as the `tokenizer.json` of our
export decodes them (`pipeline_decode`), not as `SentencePieceTokenizer.decode` does: the two
differ around special tokens and unknown characters, and the pipeline's form is the contract here.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from bert_jax.convert.hf_tokenizer import sentencepiece_model_spec
from bert_jax.inference.batching import BucketedModel, Tokens, doubling_sizes, padded_batches, round_up
from bert_jax.inference.loading import MLM_HEAD
from input_pipeline.tokenizers.sentencepiece_tokenizer import WORD_START, SentencePieceTokenizer

_BYTE_PIECE = re.compile(r"<0x([0-9A-F]{2})>")


@functools.cache
def _sentencepiece_spec(model_path: str) -> dict:
    with open(model_path, "rb") as f:
        return sentencepiece_model_spec(f.read())


def pipeline_decode(tokenizer: Any, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
    """`ids` as text, the way `transformers` decodes them with the tokenizer files of our export.

    WordPiece: the tokenizer's own `decode` (it is `BertTokenizer`'s). SentencePiece: the
    decoder chain `hf_tokenizer` writes into tokenizer.json, applied to the pieces, special
    tokens included unless skipped: "▁" becomes a space, runs of byte pieces become their UTF-8
    text (an invalid run gives one U+FFFD per byte, as `tokenizers`' ByteFallback), the pieces
    are joined, and one leading space is stripped where the model adds a dummy prefix. So a
    special token is glued to the piece before it ("new[MASK] object.[SEP]"), and a skipped
    `[UNK]` joins its neighbours ("na" `[UNK]` "ve" is "nave"), where
    `SentencePieceTokenizer.decode` puts spaces.
    """
    if not isinstance(tokenizer, SentencePieceTokenizer):
        return tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
    spec = _sentencepiece_spec(tokenizer.model_path)
    special = tokenizer.special_ids
    pieces = tokenizer.convert_ids_to_tokens(
        i for i in ids if not (skip_special_tokens and int(i) in special))
    parts: list[str] = []
    pending: list[str] = []  # a run of byte pieces, decoded together

    def flush() -> None:
        if pending:
            raw = bytes(int(_BYTE_PIECE.fullmatch(p).group(1), 16) for p in pending)
            try:
                parts.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                parts.append("\ufffd" * len(raw))
            pending.clear()

    for piece in pieces:
        piece = piece.replace(WORD_START, " ")
        if spec["byte_fallback"] and _BYTE_PIECE.fullmatch(piece):
            pending.append(piece)
            continue
        flush()
        parts.append(piece)
    flush()
    text = "".join(parts)
    if spec["add_dummy_prefix"] and text.startswith(" "):
        text = text[1:]
    return text


class FillMask(BucketedModel):
    """Predicts the tokens behind `[MASK]` with a pretrained `BertForPreTraining`.

    Build it with `FillMask.load(path)` (a work directory or a Hugging Face export) or from
    (params, config, tokenizer).
    """
    required_heads = (MLM_HEAD,)
    task = "fill-mask"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._top_k = self.jit(self._top_k_probabilities, static_argnames=("top_k",))

    @classmethod
    def from_workdir(cls, workdir: str | os.PathLike, step: int | None = None) -> "FillMask":
        """Loads the latest (or the given) checkpoint of a pretraining run and its vocab."""
        return cls.load(workdir, step)

    def _top_k_probabilities(self, params: Any, input_ids: jax.Array, input_mask: jax.Array,
                             segment_ids: jax.Array, mask_positions: jax.Array, top_k: int):
        outputs = self.model.apply({"params": params}, input_ids, input_mask, segment_ids, mask_positions)
        probs = jax.nn.softmax(outputs["mlm_logits"], axis=-1)
        return jax.lax.top_k(probs, top_k)

    def __call__(self, texts: str | list[str], top_k: int = 5, truncate: bool = False
                 ) -> list[list[list[dict]]]:
        """For each text, for each `[MASK]` in it, the `top_k` predictions as dicts with `score`,
        `token` (its id), `token_str` and `sequence` (the text with this mask filled in).

        A text longer than the model takes raises ValueError, unless `truncate`: then the longest
        window of its tokens that holds all its `[MASK]`s, centred on them, is kept (the start
        when they fit there); masks spread over more tokens than the model takes still raise.
        Raises ValueError for a text without `[MASK]`.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        tok = self.tokenizer
        if not 1 <= top_k <= tok.vocab_size:
            raise ValueError(f"top_k={top_k} must be between 1 and the vocab size, {tok.vocab_size}.")
        sequences = [masked_sequence(tok, text, self.buckets.max_length, truncate, what=f"text {i + 1}")
                     for i, text in enumerate(texts)]
        positions = [[i for i, t in enumerate(s.ids) if t == tok.mask_id] for s in sequences]
        for text, pos in zip(texts, positions):
            if not pos:
                raise ValueError(f"{text!r} has no [MASK] token to fill in.")

        scores: list[np.ndarray] = [np.empty(0)] * len(texts)
        token_ids: list[np.ndarray] = [np.empty(0)] * len(texts)
        for batch in padded_batches(sequences, self.buckets):
            length = batch.input_ids.shape[1]
            num_masks = round_up(max(len(positions[i]) for i in batch.rows), doubling_sizes(1, length))
            mask_positions = np.zeros((batch.input_ids.shape[0], num_masks), np.int32)
            for r, i in enumerate(batch.rows):
                mask_positions[r, :len(positions[i])] = positions[i]
            batch_scores, batch_ids = jax.device_get(self._top_k(
                self.params, batch.input_ids, batch.input_mask, batch.segment_ids, mask_positions,
                top_k=top_k))
            for r, i in enumerate(batch.rows):
                scores[i], token_ids[i] = batch_scores[r], batch_ids[r]

        def known(ids: list[int]) -> list[int]:
            # A model vocab padded past the vocab file (allowed, for sharding) has ids with no
            # token; the pipeline's tokenizer decodes them to nothing, so they are dropped here.
            return [t for t in ids if t < tok.vocab_size]

        results = []
        for i, (sequence, pos) in enumerate(zip(sequences, positions)):
            per_mask = []
            for m, position in enumerate(pos):
                predictions = []
                for score, token in zip(scores[i][m], token_ids[i][m]):
                    filled = list(sequence.ids)
                    filled[position] = int(token)
                    # As the `transformers` pipeline: special tokens (the other masks among them)
                    # are dropped from the sequence only when there is a single mask.
                    predictions.append({
                        "score": float(score), "token": int(token),
                        "token_str": pipeline_decode(tok, known([int(token)])),
                        "sequence": pipeline_decode(tok, known(filled), skip_special_tokens=len(pos) == 1)})
                per_mask.append(predictions)
            results.append(per_mask)
        return results


def masked_sequence(tokenizer: Any, text: str, max_length: int, truncate: bool = False,
                    what: str = "the text") -> Tokens:
    """`[CLS] text [SEP]`. Too long: a ValueError, or if `truncate` the `max_length - 2` tokens
    that keep every `[MASK]`: the first ones when the masks lie among them, else a window centred
    on the masks; a ValueError when the masks span more than the window."""
    ids = tokenizer.encode(text)
    window = max_length - 2
    if len(ids) > window:
        if not truncate:
            raise ValueError(f"{what} is {len(ids) + 2} tokens with [CLS] and [SEP]; the model takes "
                             f"at most {max_length}. Shorten it, or truncate (truncate=True, "
                             "--truncate), which keeps the tokens around its [MASK]s.")
        masks = [i for i, t in enumerate(ids) if t == tokenizer.mask_id] or [0]
        if masks[-1] - masks[0] + 1 > window:
            raise ValueError(f"{what}: its [MASK]s lie {masks[-1] - masks[0] + 1} tokens apart, more "
                             f"than the {window} the model takes with [CLS] and [SEP], so no "
                             "truncation keeps them all; split the text.")
        start = 0 if masks[-1] < window else min(max((masks[0] + masks[-1] + 1) // 2 - window // 2, 0),
                                                 len(ids) - window)
        start = min(start, masks[0])  # centring rounds; the first mask stays inside
        ids = ids[start:start + window]
    ids = [tokenizer.cls_id, *ids, tokenizer.sep_id]
    return Tokens(ids, [0] * len(ids))


def format_predictions(text: str, per_mask: list[list[dict]]) -> str:
    """A readable block: the text, then for each mask its predictions as the pipeline prints them."""
    lines = [text]
    for m, predictions in enumerate(per_mask):
        if len(per_mask) > 1:
            lines.append(f"  [MASK] #{m + 1}:")
        for p in predictions:
            lines.append(f"  {{'score': {p['score']:.4f}, 'token': {p['token']}, "
                         f"'token_str': {p['token_str']!r}, 'sequence': {p['sequence']!r}}}")
    return "\n".join(lines)
