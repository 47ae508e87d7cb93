"""Masked-LM masking as in BERT (Devlin et al., 2019, section 3.1 and appendix A.1).

15% of the non-special tokens are chosen for prediction (at most `max_predictions_per_seq`); of
those, 80% become `[MASK]`, 10% a random vocabulary token and 10% stay unchanged. With whole-word
masking, all the pieces of a word (a piece and the `##` pieces after it) are chosen together.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Collection, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """What `mask_tokens` needs to know about the vocabulary and the masking rates."""
    mask_id: int
    # Ids that are never chosen for prediction ([CLS], [SEP], [PAD]).
    never_mask_ids: frozenset[int]
    # The ids a chosen token may be replaced with in the "random token" case. Special tokens are
    # left out: a [CLS] or [PAD] in the middle of a sentence teaches the model nothing.
    random_token_ids: np.ndarray
    # `is_continuation[id]` is True for "##" pieces; used by whole-word masking.
    is_continuation: np.ndarray
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    whole_word_masking: bool = False

    @classmethod
    def from_vocab(cls, vocab: dict[str, int], special_tokens: Collection[str], **kwargs) -> "MaskingConfig":
        ids = np.arange(len(vocab))
        tokens = sorted(vocab, key=vocab.__getitem__)
        special_ids = {vocab[t] for t in special_tokens}
        return cls(
            mask_id=vocab["[MASK]"],
            never_mask_ids=frozenset({vocab["[CLS]"], vocab["[SEP]"], vocab["[PAD]"]}),
            random_token_ids=np.array([i for i in ids if i not in special_ids], dtype=np.int64),
            is_continuation=np.array([t.startswith("##") for t in tokens]),
            **kwargs)


@dataclasses.dataclass(frozen=True)
class MaskedTokens:
    input_ids: list[int]
    masked_lm_positions: list[int]  # Sorted ascending.
    masked_lm_ids: list[int]        # The original ids at those positions (the labels).


def mask_tokens(token_ids: Sequence[int], config: MaskingConfig, rng: random.Random) -> MaskedTokens:
    """Chooses positions to predict and corrupts them, as Google's `create_masked_lm_predictions`.

    Unlike the original, the number of predictions is 15% of the non-special tokens (the
    original counts [CLS] and the two [SEP]s as well, about 0.45 predictions more per sequence).
    """
    candidates: list[list[int]] = []
    for i, token in enumerate(token_ids):
        if token in config.never_mask_ids:
            continue
        if config.whole_word_masking and candidates and config.is_continuation[token] \
                and candidates[-1][-1] == i - 1:
            candidates[-1].append(i)
        else:
            candidates.append([i])
    num_candidate_tokens = sum(len(c) for c in candidates)
    num_to_predict = min(config.max_predictions_per_seq,
                         max(1, int(round(num_candidate_tokens * config.masked_lm_prob))))
    rng.shuffle(candidates)

    output = list(token_ids)
    positions: list[int] = []
    for word in candidates:
        if len(positions) >= num_to_predict:
            break
        # A whole word that would overshoot the budget is skipped, not cut.
        if len(positions) + len(word) > num_to_predict:
            continue
        for index in word:
            if rng.random() < 0.8:
                output[index] = config.mask_id
            elif rng.random() < 0.5:
                pass  # Keep the original token, so the model cannot trust unmasked tokens blindly.
            else:
                output[index] = int(config.random_token_ids[rng.randrange(len(config.random_token_ids))])
            positions.append(index)
    positions.sort()
    return MaskedTokens(output, positions, [token_ids[i] for i in positions])
