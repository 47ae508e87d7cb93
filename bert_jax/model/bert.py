"""The BERT encoder and its pretraining heads in Flax (Devlin et al., 2019).

Word + position + segment embeddings, post-LayerNorm Transformer encoder layers with GELU
feed-forward blocks, a tanh pooler on `[CLS]`, a masked-LM head whose decoder is tied to the word
embeddings, and a next-sentence head. Parameter and module names follow the original BERT (and
so Hugging Face's) layout, which keeps the checkpoint converters one-to-one.

Every parameter carries logical axis names ("vocab", "embed", "heads", "kv", "mlp"); the
mesh rules in `bert_jax.parallel.sharding` map them onto device axes, so parallelism is configured, not
coded. The task heads for fine-tuning (`task_heads`) sit beside the pretraining heads and share
`BertModel`.

Packed rows (`input_pipeline.reading.packing`: several short sequences in one row) run through the same
modules: `input_mask` then numbers each token's sequence (1, 2, ...; 0 is padding), tokens attend
only within their own sequence, positions restart at every sequence (`position_ids`), and the
pooler and next-sentence head read every sequence's `[CLS]` (`cls_positions`). Each sequence's
outputs are those it would have alone in a row.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The model's shape and numerics. Field names follow BERT's `bert_config.json` in spirit."""
    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout_rate: float = 0.1
    attention_dropout_rate: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    # "gelu" is the exact erf form (Hugging Face's "gelu"); "gelu_tanh" is the approximation
    # Google's original TensorFlow code used.
    hidden_act: str = "gelu"
    # Compute dtype of activations and matmuls; parameters are always kept in float32.
    dtype: str = "float32"
    # One `nn.scan` over the layers: compile time and program size that do not grow with depth.
    # The parameters then carry a leading "layers" axis (`unscan_params` gives per-layer ones).
    scan_layers: bool = False
    # Recompute activations in the backward pass instead of storing them: "none", "full"
    # (store only each layer's input), "dots" (store matmul outputs) or "dots_no_batch" (store
    # the weight matmuls, recompute attention scores): less memory for more FLOPs.
    remat: str = "none"
    # "auto": a fused attention unless attention dropout is active, which the fused kernels do
    # not support: cuDNN's flash attention on GPUs in bf16/fp16 (jax.nn.dot_product_attention
    # does not pick it by itself), XLA's elsewhere. "cudnn" insists on cuDNN's kernel (an error
    # where it cannot run); "plain": always the einsum-softmax-einsum.
    attention: str = "auto"

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"model.hidden_size={self.hidden_size} must be divisible by "
                             f"model.num_heads={self.num_heads}.")
        if self.hidden_act not in ("gelu", "gelu_tanh"):
            raise ValueError(f"model.hidden_act={self.hidden_act!r} must be 'gelu' or 'gelu_tanh'.")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"model.dtype={self.dtype!r} must be float32, bfloat16 or float16.")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"model.remat={self.remat!r} must be one of {tuple(REMAT_POLICIES)}.")
        if self.attention not in ("auto", "cudnn", "plain"):
            raise ValueError(f"model.attention={self.attention!r} must be 'auto', 'cudnn' or 'plain'.")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def compute_dtype(self) -> Any:
        return jnp.dtype(self.dtype)


def normal_init(config: BertConfig, axes: tuple[str, ...]):
    return nn.with_logical_partitioning(nn.initializers.truncated_normal(config.initializer_range), axes)


def zeros_init(axes: tuple[str, ...]):
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), axes)


def ones_init(axes: tuple[str, ...]):
    return nn.with_logical_partitioning(nn.initializers.ones_init(), axes)


def activation(config: BertConfig, x: Array) -> Array:
    return jax.nn.gelu(x, approximate=config.hidden_act == "gelu_tanh")


def layer_norm(config: BertConfig, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=config.layer_norm_eps, dtype=config.compute_dtype, name=name,
                        scale_init=ones_init(("embed",)), bias_init=zeros_init(("embed",)))


def dense(config: BertConfig, features: int, axes: tuple[str, str], name: str) -> nn.Dense:
    return nn.Dense(features, dtype=config.compute_dtype, name=name,
                    kernel_init=normal_init(config, axes), bias_init=zeros_init(axes[-1:]))


class Embeddings(nn.Module):
    config: BertConfig

    def setup(self):
        c = self.config
        self.word_embeddings = nn.Embed(c.vocab_size, c.hidden_size, embedding_init=normal_init(c, ("vocab", "embed")))
        self.position_embeddings = nn.Embed(c.max_position_embeddings, c.hidden_size,
                                            embedding_init=normal_init(c, (None, "embed")))
        self.token_type_embeddings = nn.Embed(c.type_vocab_size, c.hidden_size,
                                              embedding_init=normal_init(c, (None, "embed")))
        self.layer_norm = layer_norm(c, "layer_norm")
        self.dropout = nn.Dropout(c.hidden_dropout_rate)

    def __call__(self, input_ids: Array, segment_ids: Array, deterministic: bool,
                 position_ids: Array | None = None) -> Array:
        positions = jnp.arange(input_ids.shape[-1])[None, :] if position_ids is None else position_ids
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
             + self.token_type_embeddings(segment_ids))
        x = self.layer_norm(x.astype(self.config.compute_dtype))
        x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
        return self.dropout(x, deterministic=deterministic)


class HeadsProjection(nn.Module):
    """[..., hidden] -> [..., heads, head_dim] ("split"), or back ("merge"): the attention's
    query/key/value and output projections, with the kernels of `nn.DenseGeneral` ([hidden,
    heads, head_dim] and [heads, head_dim, hidden]).

    `nn.DenseGeneral` initializes a flat 2-D kernel and reshapes it, so Flax's parameter shape
    check would put the kernel's 3-D sharding constraint on a 2-D array whenever the logical
    rules are in scope (`sharding.with_logical_rules`); this creates the kernel 3-D.
    """
    config: BertConfig
    direction: str  # "split" or "merge"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = self.config
        heads = (c.num_heads, c.head_dim)
        if self.direction == "split":
            kernel_shape, kernel_axes = (c.hidden_size, *heads), ("embed", "heads", "kv")
            bias_shape, bias_axes = heads, ("heads", "kv")
            contract = ((x.ndim - 1,), (0,))
        else:
            kernel_shape, kernel_axes = (*heads, c.hidden_size), ("heads", "kv", "embed")
            bias_shape, bias_axes = (c.hidden_size,), ("embed",)
            contract = ((x.ndim - 2, x.ndim - 1), (0, 1))
        kernel = self.param("kernel", normal_init(c, kernel_axes), kernel_shape)
        bias = self.param("bias", zeros_init(bias_axes), bias_shape)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=c.compute_dtype)
        return jax.lax.dot_general(x, kernel, (contract, ((), ()))) + bias


class SelfAttention(nn.Module):
    config: BertConfig
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: Array, input_mask: Array) -> Array:
        c = self.config
        q, k, v = (HeadsProjection(c, "split", name=n)(x) for n in ("query", "key", "value"))
        dropout = not self.deterministic and c.attention_dropout_rate > 0
        if c.attention != "plain" and not dropout:
            context = fused_attention(q, k, v, input_mask, c.attention == "cudnn")
        else:
            q = q / jnp.sqrt(c.head_dim).astype(q.dtype)
            scores = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32)
            scores = scores + attention_bias_from_mask(input_mask)
            probs = jax.nn.softmax(scores, axis=-1).astype(c.compute_dtype)
            probs = nn.Dropout(c.attention_dropout_rate)(probs, deterministic=self.deterministic)
            context = jnp.einsum("bhqk,bkhd->bqhd", probs, v)
        context = nn.with_logical_constraint(context, ("batch", "length", "heads", "kv"))
        return HeadsProjection(c, "merge", name="output")(context)


def cudnn_attention_supported(q: Array) -> bool:
    """Whether cuDNN's flash attention can take these [batch, length, heads, head_dim] queries."""
    return (jax.default_backend() == "gpu" and q.dtype in (jnp.bfloat16, jnp.float16)
            and q.shape[-1] % 8 == 0 and q.shape[-1] <= 128)


def fused_attention(q: Array, k: Array, v: Array, input_mask: Array, require_cudnn: bool = False) -> Array:
    """Softmax attention of [batch, length, heads, head_dim] queries over the keys whose
    `input_mask` is 1, through `jax.nn.dot_product_attention`; or, given a [batch, 1, length,
    length] boolean mask (`packed_attention_mask`), over the keys it allows each query.

    cuDNN's kernel masks padding by per-row key lengths, which is the same mask because BERT's
    padding always comes last (input_mask is ones, then zeros). A row with no real token (the
    filler of a partial evaluation batch) gets length 1, not 0, so that it stays finite.
    """
    use_cudnn = require_cudnn or cudnn_attention_supported(q)
    if input_mask.ndim == 4:
        return jax.nn.dot_product_attention(q, k, v, mask=input_mask,
                                            implementation="cudnn" if use_cudnn else "xla")
    if use_cudnn:
        lengths = jnp.maximum(jnp.sum(input_mask, axis=-1, dtype=jnp.int32), 1)
        return jax.nn.dot_product_attention(q, k, v, key_value_seq_lengths=lengths,
                                            implementation="cudnn")
    return jax.nn.dot_product_attention(q, k, v, mask=input_mask[:, None, None, :] > 0,
                                        implementation="xla")


class EncoderLayer(nn.Module):
    """One post-LayerNorm Transformer layer: x = LN(x + Attn(x)); x = LN(x + FFN(x))."""
    config: BertConfig
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: Array, input_mask: Array) -> Array:
        c = self.config
        dropout = nn.Dropout(c.hidden_dropout_rate, deterministic=self.deterministic)
        attention = SelfAttention(c, self.deterministic, name="attention")(x, input_mask)
        x = layer_norm(c, "attention_layer_norm")(x + dropout(attention))
        h = activation(c, dense(c, c.intermediate_size, ("embed", "mlp"), "intermediate")(x))
        h = nn.with_logical_constraint(h, ("batch", "length", "mlp"))
        h = dense(c, c.hidden_size, ("mlp", "embed"), "output")(h)
        x = layer_norm(c, "output_layer_norm")(x + dropout(h))
        return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class _ScanStep(nn.Module):
    """An encoder layer as a step of `nn.scan`: (carry, broadcast input) -> (carry, None)."""
    config: BertConfig
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: Array, input_mask: Array) -> tuple[Array, None]:
        return _layer_class(self.config)(self.config, self.deterministic, name="layer")(x, input_mask), None


REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


def _layer_class(config: BertConfig) -> type[nn.Module]:
    if config.remat == "none":
        return EncoderLayer
    # Inside a scan, CSE cannot undo the recomputation, so its prevention is not needed.
    return nn.remat(EncoderLayer, policy=REMAT_POLICIES[config.remat], prevent_cse=not config.scan_layers)


def attention_bias_from_mask(input_mask: Array) -> Array:
    """[batch, length] 1/0 mask to an additive [batch, 1, 1, length] bias: padded keys get a large
    negative score, so they receive no attention weight. A [batch, 1, length, length] boolean
    mask (`packed_attention_mask`) becomes a bias of its own shape."""
    allowed = input_mask if input_mask.ndim == 4 else input_mask[:, None, None, :] > 0
    return jnp.where(allowed, 0.0, jnp.finfo(jnp.float32).min).astype(jnp.float32)


def packed_attention_mask(sequence_ids: Array) -> Array:
    """[batch, 1, length, length] booleans from a packed row's sequence numbers (1, 2, ... per
    token, 0 on padding): a token attends to the tokens of its own sequence only. A padding
    query attends to the padding keys, which keeps its (unused) output finite."""
    return sequence_ids[:, None, :, None] == sequence_ids[:, None, None, :]


class BertModel(nn.Module):
    """Embeddings, encoder and pooler: the part every BERT task shares. Without
    `add_pooling_layer` (the token-level heads, as `transformers` builds them) there is no pooler
    and the pooled output is None."""
    config: BertConfig
    add_pooling_layer: bool = True

    def setup(self):
        c = self.config
        self.embeddings = Embeddings(c)
        if self.add_pooling_layer:
            self.pooler = dense(c, c.hidden_size, ("embed", "embed_out"), "pooler")

    @nn.compact
    def __call__(self, input_ids: Array, input_mask: Array, segment_ids: Array,
                 deterministic: bool = True, position_ids: Array | None = None,
                 cls_positions: Array | None = None) -> tuple[Array, Array | None]:
        """Returns the sequence output [batch, length, hidden] and the pooled `[CLS]` output
        [batch, hidden].

        Packed rows pass `position_ids` [batch, length] (each sequence's own positions) and
        `cls_positions` [batch, sequences] (where each sequence starts); `input_mask` then holds
        sequence numbers, and the pooled output is [batch, sequences, hidden].
        """
        c = self.config
        x = self.embeddings(input_ids, segment_ids, deterministic, position_ids)
        if position_ids is not None:
            input_mask = packed_attention_mask(input_mask)
        if c.scan_layers:
            layers = nn.scan(_ScanStep, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
                             in_axes=nn.broadcast, length=c.num_layers,
                             metadata_params={nn.PARTITION_NAME: "layers"})
            x, _ = layers(c, deterministic, name="layers")(x, input_mask)
        else:
            for i in range(c.num_layers):
                x = _layer_class(c)(c, deterministic, name=f"layer_{i}")(x, input_mask)
        if not self.add_pooling_layer:
            return x, None
        first = x[:, 0] if cls_positions is None else jnp.take_along_axis(x, cls_positions[..., None], axis=1)
        pooled = jnp.tanh(self.pooler(first))
        return x, pooled


def unscan_params(params: Any, num_layers: int) -> Any:
    """Parameters of a `scan_layers` model laid out as an unscanned one's (`bert/layer_{i}/...`),
    for export; a tree without scanned layers is returned unchanged."""
    bert = params.get("bert", {})
    if "layers" not in bert:
        return params
    stacked = bert["layers"]["layer"]
    layers = {f"layer_{i}": jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(num_layers)}
    rest = {k: v for k, v in bert.items() if k != "layers"}
    return {**params, "bert": {**rest, **layers}}


def scan_params(params: Any, num_layers: int) -> Any:
    """Unscanned parameters (`bert/layer_{i}/...`) laid out as a `scan_layers` model's
    (`bert/layers/layer/...`, a leading layers axis), for import: the inverse of `unscan_params`."""
    bert = params["bert"]
    layers = [bert[f"layer_{i}"] for i in range(num_layers)]
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *layers)
    rest = {k: v for k, v in bert.items() if not k.startswith("layer_")}
    return {**params, "bert": {**rest, "layers": {"layer": stacked}}}
