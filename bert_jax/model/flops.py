"""Model FLOPs of a pretraining step, counted from the config (for TFLOP/s and MFU).

Only matrix multiplications are counted (2 FLOPs per multiply-add), as in the PaLM paper's MFU:
the backward pass costs twice the forward pass, and recomputation from rematerialization is not
counted, so MFU measures useful work.
"""

from __future__ import annotations

from bert_jax.model import BertConfig

# Dense bf16 peak FLOP/s of one device, from the vendors' datasheets.
PEAK_FLOPS = {
    "NVIDIA H100": 989e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100": 312e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
}


def forward_flops_per_sequence(config: BertConfig, seq_length: int, num_predictions: int) -> float:
    """Matmul FLOPs of one forward pass over one sequence with `num_predictions` MLM positions."""
    h, i, v, L = config.hidden_size, config.intermediate_size, config.vocab_size, seq_length
    per_layer = (2 * L * h * 3 * h      # query, key, value projections
                 + 2 * L * L * h * 2    # attention scores and the weighted sum of values
                 + 2 * L * h * h        # attention output projection
                 + 2 * L * h * i * 2)   # feed-forward, both matrices
    pooler_and_nsp = 2 * h * h + 2 * h * 2
    masked_lm = num_predictions * (2 * h * h + 2 * h * v)
    return config.num_layers * per_layer + pooler_and_nsp + masked_lm


def train_flops_per_step(config: BertConfig, batch_size: int, seq_length: int, num_predictions: int) -> float:
    """Forward and backward (3x forward) FLOPs of one training step."""
    return 3.0 * batch_size * forward_flops_per_sequence(config, seq_length, num_predictions)


def peak_flops(device_kind: str) -> float | None:
    """The datasheet peak of a device kind (e.g. "NVIDIA H100 80GB HBM3"), or None if unknown."""
    for prefix, value in PEAK_FLOPS.items():
        if device_kind.startswith(prefix):
            return value
    return None
