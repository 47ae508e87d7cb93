"""Stateless, counter-based uniform random numbers: a pure function of (seed, epoch, key, position,
stream), computed for whole blocks of rows at once in numpy.

Dynamic masking (RoBERTa) masks every stored instance afresh each epoch. Drawing those masks from
a stateful generator would make an instance's mask depend on which batch, batch position or host
it landed in; hashing its coordinates instead makes the mask a property of the instance alone, so
a run is reproducible however the data is sharded, shuffled or resumed.

The hash is splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
2014; the finalizer constants are Stafford's "Mix13"): each row gets a state derived from
(seed, epoch, stream, key) by chained mixing, and position `p` of the row is the `p`-th output of
splitmix64 from that state. splitmix64 passes BigCrush; numpy's uint64 arithmetic wraps modulo
2**64, which is what the algorithm assumes.
"""

from __future__ import annotations

import numpy as np

_MASK64 = (1 << 64) - 1
# The golden-ratio increment of splitmix64 (an odd constant with well-spread bits).
_GAMMA = 0x9E3779B97F4A7C15
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB


def mix64(x: int) -> int:
    """The splitmix64 finalizer on one Python integer (a bijection of 64-bit words)."""
    x &= _MASK64
    x = ((x ^ (x >> 30)) * _MUL1) & _MASK64
    x = ((x ^ (x >> 27)) * _MUL2) & _MASK64
    return x ^ (x >> 31)


def _mix64_inplace(z: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """`mix64` over a uint64 array, in place (`scratch` is a same-shaped work array), so a block
    of a million values needs no temporaries beyond the two arrays."""
    np.right_shift(z, np.uint64(30), out=scratch)
    np.bitwise_xor(z, scratch, out=z)
    np.multiply(z, np.uint64(_MUL1), out=z)
    np.right_shift(z, np.uint64(27), out=scratch)
    np.bitwise_xor(z, scratch, out=z)
    np.multiply(z, np.uint64(_MUL2), out=z)
    np.right_shift(z, np.uint64(31), out=scratch)
    np.bitwise_xor(z, scratch, out=z)
    return z


def _absorb(state: int, value: int) -> int:
    """Folds one 64-bit word into a state. For a fixed state this is a bijection of `value` (and
    for a fixed value a bijection of `state`), so distinct inputs never collide at one step."""
    return mix64(state + mix64(value + _GAMMA))


def _check_word(name: str, value: int) -> int:
    value = int(value)
    if not 0 <= value <= _MASK64:
        raise ValueError(f"{name}={value} must be in [0, 2**64).")
    return value


def hashed_words(seed: int, epoch: int, example_keys: np.ndarray, length: int,
                 stream: int) -> np.ndarray:
    """[N, length] uint64 words, word [i, p] a pure function of (seed, epoch, example_keys[i], p,
    stream): the same key gives the same row in any block, at any index, on any host.

    `seed`, `epoch` and `stream` are integers in [0, 2**64); `example_keys` is a [N] array of
    uint64 (or non-negative integers), one distinct key per instance (e.g. its index in the
    dataset). Use different streams for the different uses of randomness of one instance.

    Exactly, with arithmetic modulo 2**64 and g = 0x9E3779B97F4A7C15 (so that other code can
    reproduce it): `words[i, p] = mix64(s_i + (p + 1) g)` with
    `s_i = absorb(absorb(absorb(absorb(0, seed), epoch), stream), key_i)` and
    `absorb(h, x) = mix64(h + mix64(x + g))`.
    """
    base = _absorb(_absorb(_absorb(0, _check_word("seed", seed)), _check_word("epoch", epoch)),
                   _check_word("stream", stream))
    keys = np.asarray(example_keys)
    if keys.ndim != 1:
        raise ValueError(f"example_keys must be one-dimensional, got shape {keys.shape}.")
    if keys.dtype.kind not in "iu":
        raise ValueError(f"example_keys must be integers, got {keys.dtype}.")
    if keys.dtype.kind == "i" and keys.size and keys.min() < 0:
        raise ValueError("example_keys must be non-negative.")
    keys = keys.astype(np.uint64)
    with np.errstate(over="ignore"):
        # The row's state: _absorb(base, key), vectorized.
        state = keys + np.uint64(_GAMMA)
        scratch = np.empty_like(state)
        _mix64_inplace(state, scratch)
        state += np.uint64(base)
        _mix64_inplace(state, scratch)
        # splitmix64's p-th output: mix64(state + (p + 1) * gamma).
        steps = np.arange(1, length + 1, dtype=np.uint64) * np.uint64(_GAMMA)
        words = state[:, None] + steps[None, :]
        _mix64_inplace(words, np.empty_like(words))
    return words


def hashed_uniforms(seed: int, epoch: int, example_keys: np.ndarray, length: int,
                    stream: int) -> np.ndarray:
    """[N, length] float64 uniforms in [0, 1), each the top 53 bits of `hashed_words` (so every
    value is a multiple of 2**-53, as numpy's and Python's `random()` are)."""
    words = hashed_words(seed, epoch, example_keys, length, stream)
    words >>= np.uint64(11)
    out = words.astype(np.float64)
    out *= 2.0 ** -53
    return out
