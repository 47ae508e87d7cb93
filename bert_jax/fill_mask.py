"""Fill-mask inference: the top-k tokens for every `[MASK]` in a text, with their scores, in the
form `transformers`' `pipeline("fill-mask")` returns them.

The forward pass is jitted once per (batch, length, masks) bucket; lengths and mask counts are
rounded up to powers of two so that a stream of requests compiles a handful of programs, not one
per input.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.model import BertConfig, BertForPreTraining
from input_pipeline.tokenization import BertTokenizer, load_tokenizer


def _bucket(n: int, minimum: int, maximum: int) -> int:
    size = minimum
    while size < n:
        size *= 2
    return min(size, maximum)


class FillMask:
    """Predicts the tokens behind `[MASK]` with a pretrained `BertForPreTraining`."""

    def __init__(self, params: Any, config: BertConfig, tokenizer: BertTokenizer):
        self.params = params
        self.config = config
        self.tokenizer = tokenizer
        self.model = BertForPreTraining(config)

    @classmethod
    def from_workdir(cls, workdir: str | os.PathLike, step: int | None = None) -> "FillMask":
        """Loads the latest (or the given) checkpoint of a pretraining run and its vocab."""
        from bert_jax.experiment_config import bert_config
        from bert_jax.train import load_trained_params

        params, config, _ = load_trained_params(workdir, step)
        tokenizer = load_tokenizer(config.data.vocab_file, do_lower_case=config.data.do_lower_case)
        return cls(params, bert_config(config), tokenizer)

    @functools.partial(jax.jit, static_argnums=(0, 5))
    def _top_k(self, params, input_ids, input_mask, mask_positions, top_k):
        outputs = self.model.apply({"params": params}, input_ids, input_mask,
                                   jnp.zeros_like(input_ids), mask_positions)
        probs = jax.nn.softmax(outputs["mlm_logits"], axis=-1)
        return jax.lax.top_k(probs, top_k)

    def __call__(self, texts: str | list[str], top_k: int = 5) -> list[list[list[dict]]]:
        """For each text, for each `[MASK]` in it, the `top_k` predictions as dicts with `score`,
        `token`, `token_str` and `sequence` (the text with the mask filled in)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        tok = self.tokenizer
        encoded = [[tok.cls_id, *tok.encode(t), tok.sep_id] for t in texts]
        max_len = self.config.max_position_embeddings
        for text, ids in zip(texts, encoded):
            if len(ids) > max_len:
                raise ValueError(f"{text[:40]!r}... is {len(ids)} tokens; the model takes at most {max_len}.")
            if tok.mask_id not in ids:
                raise ValueError(f"{text!r} has no [MASK] token to fill in.")
        positions = [[i for i, t in enumerate(ids) if t == tok.mask_id] for ids in encoded]
        length = _bucket(max(map(len, encoded)), 16, max_len)
        num_masks = _bucket(max(map(len, positions)), 1, length)
        batch = _bucket(len(texts), 1, 1 << 30)
        input_ids = np.zeros((batch, length), np.int32)
        mask_positions = np.zeros((batch, num_masks), np.int32)
        for row, (ids, pos) in enumerate(zip(encoded, positions)):
            input_ids[row, :len(ids)] = ids
            mask_positions[row, :len(pos)] = pos
        scores, token_ids = jax.device_get(self._top_k(
            self.params, input_ids, (input_ids != 0).astype(np.int32), mask_positions, top_k))

        results = []
        for row, (ids, pos) in enumerate(zip(encoded, positions)):
            per_mask = []
            for m, position in enumerate(pos):
                predictions = []
                for score, token in zip(scores[row, m], token_ids[row, m]):
                    filled = list(ids)
                    filled[position] = int(token)
                    # As the `transformers` pipeline: special tokens are dropped from the sequence
                    # only when there is a single mask.
                    predictions.append({
                        "score": float(score), "token": int(token),
                        "token_str": tok.decode([int(token)]),
                        "sequence": tok.decode(filled, skip_special_tokens=len(pos) == 1)})
                per_mask.append(predictions)
            results.append(per_mask)
        return results


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
