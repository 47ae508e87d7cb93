"""Masked-LM masking as in BERT (Devlin et al., 2019, section 3.1 and appendix A.1).

15% of the non-special tokens are chosen for prediction (at most `max_predictions_per_seq`); of
those, 80% become `[MASK]`, 10% a random vocabulary token and 10% stay unchanged. With whole-word
masking, all the pieces of a word (a piece and the `##` pieces after it) are chosen together.

Two implementations of the same rules:

* `mask_tokens`, one instance with a `random.Random`: the readable reference, written after
  Google's `create_masked_lm_predictions`;
* `mask_batch`, a block of instances in numpy from given uniforms: what creation and the reader
  run. Its randomness comes in as arrays, so the caller decides where it comes from: a numpy
  Generator per block when creating shards (`mask_batch_with_rng`), or a hash of (seed, epoch,
  example) when the reader masks stored instances afresh each epoch (`mask_batch_hashed`,
  RoBERTa's dynamic masking), which makes an instance's mask independent of its batch and host.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Collection, Sequence

import numpy as np

from input_pipeline.instances.counter_random import hashed_uniforms


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

    @classmethod
    def from_tokenizer(cls, tokenizer, **kwargs) -> "MaskingConfig":
        """The config for any tokenizer with BertTokenizer's protocol: `vocab_size`, `mask_id`,
        `cls_id`, `sep_id`, `pad_id`, `special_ids` and `is_continuation` (WordPiece's "##"
        pieces, or a SentencePiece tokenizer's pieces without the word-start marker)."""
        special_ids = np.fromiter(tokenizer.special_ids, dtype=np.int64)
        ids = np.arange(tokenizer.vocab_size, dtype=np.int64)
        return cls(
            mask_id=int(tokenizer.mask_id),
            never_mask_ids=frozenset({int(tokenizer.cls_id), int(tokenizer.sep_id),
                                      int(tokenizer.pad_id)}),
            random_token_ids=ids[~np.isin(ids, special_ids)],
            is_continuation=np.asarray(tokenizer.is_continuation, dtype=bool),
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


# --- Blocks of instances in numpy. -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MaskedBatch:
    """A block of masked instances; P = `max_predictions_per_seq`."""
    input_ids: np.ndarray            # [N, L], the corrupted ids, the dtype of the input.
    masked_lm_positions: np.ndarray  # [N, P] int32, ascending, padded with 0.
    masked_lm_ids: np.ndarray        # [N, P] int32, the original ids there (labels), padded with 0.
    masked_lm_weights: np.ndarray    # [N, P] float32, 1.0 for a prediction, 0.0 for padding.
    num_predictions: np.ndarray      # [N] int32.


# The `hashed_uniforms` streams of `mask_batch_hashed`; other uses of randomness for the same
# instances must take other streams.
ORDER_STREAM, ACTION_STREAM, TOKEN_STREAM = 0, 1, 2

# Rows are masked about 65,000 tokens at a time: the work arrays then stay in the CPU's L2 and L3
# caches, which makes a block of 4,096 rows of 512 tokens a third faster than in one piece.
_CHUNK_TOKENS = 65_536

# The uniforms of rows [lo, hi): (u_order [n, L], and a function from the chosen positions
# ([n, P], ascending, padded with L) to (u_action, u_token) [n, P] for them).
_SlotUniforms = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
_UniformSource = Callable[[int, int], tuple[np.ndarray, _SlotUniforms]]


def prediction_budget(num_candidates: np.ndarray, config: MaskingConfig) -> np.ndarray:
    """`min(P, max(1, round(masked_lm_prob * n)))` per row, with Python's `round` (half to even,
    as `np.rint`; the product is the same IEEE double in both)."""
    wanted = np.rint(np.asarray(num_candidates) * config.masked_lm_prob).astype(np.int64)
    return np.minimum(config.max_predictions_per_seq, np.maximum(1, wanted))


def mask_batch(input_ids: np.ndarray, config: MaskingConfig, u_order: np.ndarray,
               u_action: np.ndarray, u_token: np.ndarray, *,
               input_mask: np.ndarray | None = None) -> MaskedBatch:
    """Masks a block of instances as `mask_tokens` masks one, from given uniforms.

    `input_ids` is [N, L], rows `[CLS] A [SEP] B [SEP]` padded with [PAD]; `u_order`, `u_action`
    and `u_token` are [N, L] uniforms in [0, 1). Candidates (all ids but [CLS], [SEP], [PAD], and
    positions where `input_mask` is 0 if given) are taken in ascending `u_order` (with whole-word
    masking, words in ascending `u_order` of their first piece, a word that would overshoot the
    budget skipped); a chosen position becomes [MASK] if `u_action < 0.8`, stays if `< 0.9`, and
    otherwise becomes `random_token_ids[floor(u_token * len(random_token_ids))]`.

    `u_order` is compared at the resolution of numpy's and Python's uniforms, 2**-53 (coarser
    by a bit per doubling of L beyond 1,024), with ties broken by position (lower first). Every
    random choice about position `j` of row `i` reads the uniforms at `[i, j]` only, so a row's
    mask depends on its own ids and uniforms alone.
    """
    ids = _check_ids(input_ids)
    uniforms = [np.asarray(u) for u in (u_order, u_action, u_token)]
    for name, u in zip(("u_order", "u_action", "u_token"), uniforms):
        if u.shape != ids.shape:
            raise ValueError(f"{name} has shape {u.shape}, input_ids {ids.shape}.")
    u_order, u_action, u_token = uniforms
    length = ids.shape[1]

    def source(lo: int, hi: int) -> tuple[np.ndarray, _SlotUniforms]:
        def at_positions(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # Padding slots (position L) read position L - 1; _corrupt ignores them.
            flat = np.minimum(positions, length - 1) + np.arange(hi - lo)[:, None] * length
            return np.take(u_action[lo:hi], flat), np.take(u_token[lo:hi], flat)
        return u_order[lo:hi], at_positions

    return _mask_in_chunks(ids, config, input_mask, source)


def mask_batch_with_rng(input_ids: np.ndarray, config: MaskingConfig, rng: np.random.Generator,
                        *, input_mask: np.ndarray | None = None) -> MaskedBatch:
    """Masks as `mask_batch`, with uniforms from a numpy Generator (one per block when creating
    shards).

    Row `i` takes the next L + 2 P of the Generator's uniforms, P = `max_predictions_per_seq`:
    its `u_order`, then the `u_action` and the `u_token` of its predictions in ascending order
    of position. Drawing these for the (at most P) chosen positions only, rather than for all L,
    saves more than half the draws; the masks have the same distribution.
    """
    ids = _check_ids(input_ids)
    length, p = ids.shape[1], config.max_predictions_per_seq

    def source(lo: int, hi: int) -> tuple[np.ndarray, _SlotUniforms]:
        u = rng.random((hi - lo, length + 2 * p))
        return u[:, :length], lambda _: (u[:, length:length + p], u[:, length + p:])

    return _mask_in_chunks(ids, config, input_mask, source)


def mask_batch_hashed(input_ids: np.ndarray, config: MaskingConfig, seed: int, epoch: int,
                      example_keys: np.ndarray, *,
                      input_mask: np.ndarray | None = None) -> MaskedBatch:
    """Masks as `mask_batch`, with uniforms hashed from (seed, epoch, example key): dynamic
    masking, where row `i`'s mask depends only on its ids, `seed`, `epoch` and `example_keys[i]`
    (not on the block, its place in the block or the host), and changes from epoch to epoch.

    `u_order` is `hashed_uniforms(..., L, ORDER_STREAM)`; the `u_action` and `u_token` of the
    k-th prediction (in ascending order of position) are column k of `hashed_uniforms(..., P,
    ACTION_STREAM)` and of `(..., P, TOKEN_STREAM)`: hashing P columns instead of L is cheaper.
    """
    ids = _check_ids(input_ids)
    keys = np.asarray(example_keys)
    if keys.shape != ids.shape[:1]:
        raise ValueError(f"example_keys has shape {keys.shape}, want ({ids.shape[0]},).")
    length, p = ids.shape[1], config.max_predictions_per_seq

    def source(lo: int, hi: int) -> tuple[np.ndarray, _SlotUniforms]:
        chunk_keys = keys[lo:hi]
        return (hashed_uniforms(seed, epoch, chunk_keys, length, ORDER_STREAM),
                lambda _: (hashed_uniforms(seed, epoch, chunk_keys, p, ACTION_STREAM),
                           hashed_uniforms(seed, epoch, chunk_keys, p, TOKEN_STREAM)))

    return _mask_in_chunks(ids, config, input_mask, source)


def _check_ids(input_ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(input_ids)
    if ids.ndim != 2 or ids.dtype.kind not in "iu" or ids.shape[1] == 0:
        raise ValueError(f"input_ids must be [N, L] integers with L > 0, got {ids.dtype} of "
                         f"shape {ids.shape}.")
    return ids


def _mask_in_chunks(ids: np.ndarray, config: MaskingConfig, input_mask: np.ndarray | None,
                    uniforms: _UniformSource) -> MaskedBatch:
    n, length = ids.shape
    if input_mask is not None:
        input_mask = np.asarray(input_mask)
        if input_mask.shape != ids.shape:
            raise ValueError(f"input_mask has shape {input_mask.shape}, input_ids {ids.shape}.")
    p = config.max_predictions_per_seq
    out = MaskedBatch(np.empty_like(ids), np.empty((n, p), np.int32), np.empty((n, p), np.int32),
                      np.empty((n, p), np.float32), np.empty(n, np.int32))
    rows = max(1, _CHUNK_TOKENS // max(length, 1))
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        _mask_chunk(ids[lo:hi], config, None if input_mask is None else input_mask[lo:hi],
                    *uniforms(lo, hi), MaskedBatch(*(getattr(out, f.name)[lo:hi]
                                                     for f in dataclasses.fields(MaskedBatch))))
    return out


def _mask_chunk(ids: np.ndarray, config: MaskingConfig, input_mask: np.ndarray | None,
                u_order: np.ndarray, slot_uniforms: _SlotUniforms, out: MaskedBatch) -> None:
    """Masks a chunk of rows into `out`, views of the block's outputs."""
    # A few comparisons beat a lookup table: they need no bound on the ids.
    candidate = np.ones(ids.shape, dtype=bool)
    for special in config.never_mask_ids:
        candidate &= ids != special
    if input_mask is not None:
        candidate &= input_mask != 0
    budget = prediction_budget(candidate.sum(axis=1), config)
    choose = _choose_whole_words if config.whole_word_masking else _choose_tokens
    positions, count = choose(ids, candidate, budget, u_order, config)
    _corrupt(ids, positions, count, config, *slot_uniforms(positions), out)


def _index_bits(length: int) -> int:
    return max(1, (int(length) - 1).bit_length())


_INVALID = np.uint64(1 << 63)


def _order_keys(u_order: np.ndarray, index: np.ndarray, valid: np.ndarray,
                index_bits: int) -> np.ndarray:
    """uint64 keys `floor(u * 2**53) << index_bits | index`, plus 2**63 where not `valid` (which
    sorts those last: valid keys stay below 2**63).

    Sorting whole keys instead of argsorting floats is the speed (numpy sorts and partitions
    uint64 rows with SIMD; a stable float argsort is 20 times slower) and breaks ties in `u` by
    index on every platform. Rows longer than 1024 give up low bits of `u`, never of the index.
    """
    keys = (u_order * float(1 << 53)).astype(np.int64).view(np.uint64)
    drop = max(0, index_bits - 10)
    if drop:
        keys >>= np.uint64(drop)
    keys <<= np.uint64(index_bits)
    keys |= index.astype(np.uint64)
    # Arithmetic, not `keys[~valid] = ...`: a masked store is several times slower.
    keys |= ~valid * _INVALID
    return keys


def _smallest_sorted(keys: np.ndarray, k: int) -> np.ndarray:
    """The `k` smallest keys of each row, ascending (a partition first: at L = 512 and P = 76 it
    halves the cost of sorting the whole row)."""
    if k < keys.shape[1]:
        keys = np.partition(keys, k - 1, axis=1)[:, :k]
    else:
        keys = keys.copy()
    keys.sort(axis=1)
    return keys


def _pad_positions(positions: np.ndarray, max_predictions: int, length: int) -> np.ndarray:
    # Rows shorter than P tokens have fewer than P columns of positions.
    missing = max_predictions - positions.shape[1]
    if missing > 0:
        positions = np.pad(positions, ((0, 0), (0, missing)), constant_values=length)
    return positions


def _choose_tokens(ids: np.ndarray, candidate: np.ndarray, budget: np.ndarray, u_order: np.ndarray,
                   config: MaskingConfig) -> tuple[np.ndarray, np.ndarray]:
    """The `min(budget, candidates)` candidates of smallest `u_order` per row, as
    ([N, P] int32 positions ascending, padded with L; [N] counts)."""
    length = candidate.shape[1]
    bits = _index_bits(length)
    keys = _smallest_sorted(_order_keys(u_order, np.arange(length), candidate, bits),
                            config.max_predictions_per_seq)
    count = np.minimum(budget, candidate.sum(axis=1))
    positions = (keys & np.uint64((1 << bits) - 1)).astype(np.int32)
    positions[np.arange(keys.shape[1]) >= count[:, None]] = length
    positions.sort(axis=1)
    return _pad_positions(positions, config.max_predictions_per_seq, length), count


def _choose_whole_words(ids: np.ndarray, candidate: np.ndarray, budget: np.ndarray,
                        u_order: np.ndarray,
                        config: MaskingConfig) -> tuple[np.ndarray, np.ndarray]:
    """Whole words taken greedily in ascending `u_order` of their first piece, skipping any that
    would overshoot the budget, as `mask_tokens`; returned as `_choose_tokens` returns."""
    n, length = candidate.shape
    p = config.max_predictions_per_seq
    # A continuation piece joins the word before it only if the piece before it is a candidate.
    follows_candidate = np.zeros_like(candidate)
    follows_candidate[:, 1:] = candidate[:, :-1]
    starts = candidate & ~(np.take(config.is_continuation, ids) & follows_candidate)
    # Words numbered through the whole chunk (a flat cumsum): word_id is each candidate's word.
    # (int32: chunks hold tens of thousands of tokens, and an int32 cumsum is twice as fast.)
    word_id = np.cumsum(starts.reshape(-1), dtype=np.int32).reshape(n, length) - 1
    word_length = np.bincount(word_id[candidate], minlength=1)
    num_words = starts.sum(axis=1)
    row_offset = np.arange(n, dtype=np.int64)[:, None] * length

    # The words by ascending u_order of their first piece (the keys' index is that piece's
    # position). At most P words fit in the budget, so the first P + 1 words include the first
    # one that overshoots it; until that one, every word is taken.
    bits = _index_bits(length)
    keys = _order_keys(u_order, np.arange(length), starts, bits)
    head = _smallest_sorted(keys, p + 1)
    in_row = np.arange(head.shape[1]) < num_words[:, None]
    start = np.minimum(head & np.uint64((1 << bits) - 1), length - 1).astype(np.int64)
    words = np.take(word_id, start + row_offset)
    total = np.cumsum(np.where(in_row, word_length[words], 0), axis=1)
    accepted = in_row & (total <= budget[:, None])
    num_accepted = accepted.sum(axis=1)
    taken = np.where(num_accepted > 0, total[np.arange(n), np.maximum(num_accepted - 1, 0)], 0)
    accepted_words = [words[accepted]]
    unfinished = np.flatnonzero((taken < budget) & (num_accepted < num_words))
    if unfinished.size:
        accepted_words += _fill_after_overshoot(
            keys[unfinished], word_id[unfinished], word_length, num_words[unfinished],
            num_accepted[unfinished], (budget - taken)[unfinished], bits)
    word_accepted = np.zeros(max(word_length.size, 1), dtype=bool)
    word_accepted[np.concatenate(accepted_words)] = True
    # word_id is -1 (clipped to 0) only before the chunk's first word, at non-candidates.
    chosen = candidate & np.take(word_accepted, word_id, mode="clip")
    return _positions_of(chosen, p)


def _positions_of(chosen: np.ndarray, max_predictions: int) -> tuple[np.ndarray, np.ndarray]:
    """The chosen positions of each row ([N, L] bool, at most P per row) as [N, P] int32,
    ascending and padded with L, and their number per row."""
    n, length = chosen.shape
    flat = np.flatnonzero(chosen)  # Row-major: each row's positions come out ascending.
    rows = flat // length
    count = np.bincount(rows, minlength=n)
    slot = np.arange(flat.size) - np.repeat(np.cumsum(count) - count, count)
    positions = np.full((n, max_predictions), length, dtype=np.int32)
    positions.reshape(-1)[rows * max_predictions + slot] = flat - rows * length
    return positions, count


def _fill_after_overshoot(keys: np.ndarray, word_id: np.ndarray, word_length: np.ndarray,
                          num_words: np.ndarray, num_accepted: np.ndarray, room: np.ndarray,
                          bits: int) -> list[np.ndarray]:
    """The words taken after the first word that overshoots the budget, for the rows (about one
    in ten) that have one and room left: greedily, in order, each word that still fits.

    A word that does not fit now never will (the room only shrinks), so each round takes, per
    row, the first later word that fits; rounds are at most the room left, a few at most.
    """
    m, length = keys.shape
    start = np.minimum(np.sort(keys, axis=1) & np.uint64((1 << bits) - 1), length - 1)
    words = np.take_along_axis(word_id, start.astype(np.int64), axis=1)
    column = np.arange(length)
    later = (column > num_accepted[:, None]) & (column < num_words[:, None])
    never_fits = length + 1
    sizes = np.where(later, word_length[words], never_fits)
    room = room.copy()
    taken = []
    active = np.arange(m)
    while active.size:
        fits = sizes[active] <= room[active, None]
        active = active[fits.any(axis=1)]  # Rows where nothing fits are done.
        if not active.size:
            break
        first = fits[fits.any(axis=1)].argmax(axis=1)
        taken.append(words[active, first])
        room[active] -= sizes[active, first]
        sizes[active] = np.where(column <= first[:, None], never_fits, sizes[active])
    return taken


def _corrupt(ids: np.ndarray, positions: np.ndarray, count: np.ndarray, config: MaskingConfig,
             u_action: np.ndarray, u_token: np.ndarray, out: MaskedBatch) -> None:
    """Corrupts the chosen positions ([N, P], ascending, padded with L) by the 80/10/10 rule,
    with the [N, P] uniforms of each prediction, into `out`."""
    n, length = ids.shape
    real = positions < length
    flat = np.minimum(positions, length - 1) + np.arange(n)[:, None] * length
    labels = np.take(ids, flat)
    labels[~real] = 0
    vocab = config.random_token_ids
    # u < 1 gives floor(u * len) < len in exact arithmetic; the clip guards the rounding of the
    # product for the largest doubles below 1.
    picks = np.minimum((u_token * len(vocab)).astype(np.int64), len(vocab) - 1)
    new = np.where(u_action < 0.8, config.mask_id, np.where(u_action < 0.9, labels, vocab[picks]))
    out.input_ids[...] = ids
    out.input_ids.reshape(-1)[flat[real]] = new[real]
    out.masked_lm_positions[...] = np.where(real, positions, 0)
    out.masked_lm_ids[...] = labels
    out.masked_lm_weights[...] = real
    out.num_predictions[...] = count
