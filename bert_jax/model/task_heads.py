"""BERT's fine-tuning heads (Devlin et al., 2019, section 4) on `BertModel`, laid out as
`transformers`' classes of the same names so that their checkpoints convert one-to-one
(`convert.parameter_table.HEADS`):

* `BertForSequenceClassification`: pooled `[CLS]` -> dropout -> Dense(num_labels) (`classifier`);
  one label is a regression score. Single sentences and pairs alike.
* `BertForTokenClassification`: every token's output -> dropout -> Dense(num_labels); no pooler.
* `BertForQuestionAnswering`: every token's output -> Dense(2) (`qa_outputs`): start and end
  logits of the answer span; no pooler, no dropout.

Logits are float32 whatever the compute dtype: the losses and the span search read them.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from bert_jax.model.bert import Array, BertConfig, BertModel, dense
from bert_jax.model.pretraining import BertForPreTraining

# A model kind (`convert.parameter_table.HEADS`) -> the Flax module of that kind.
TASK_KINDS = ("sequence_classification", "token_classification", "question_answering")


class BertForSequenceClassification(nn.Module):
    """Logits [batch, num_labels] from the pooled `[CLS]` output (num_labels 1: a score)."""
    config: BertConfig
    num_labels: int = 2

    def setup(self):
        self.bert = BertModel(self.config)
        self.dropout = nn.Dropout(self.config.hidden_dropout_rate)
        self.classifier = dense(self.config, self.num_labels, ("embed", None), "classifier")

    def __call__(self, input_ids: Array, input_mask: Array, segment_ids: Array,
                 deterministic: bool = True) -> Array:
        _, pooled = self.bert(input_ids, input_mask, segment_ids, deterministic)
        pooled = self.dropout(pooled, deterministic=deterministic)
        return self.classifier(pooled).astype(jnp.float32)


class BertForTokenClassification(nn.Module):
    """Logits [batch, length, num_labels]: a label per token."""
    config: BertConfig
    num_labels: int = 2

    def setup(self):
        self.bert = BertModel(self.config, add_pooling_layer=False)
        self.dropout = nn.Dropout(self.config.hidden_dropout_rate)
        self.classifier = dense(self.config, self.num_labels, ("embed", None), "classifier")

    def __call__(self, input_ids: Array, input_mask: Array, segment_ids: Array,
                 deterministic: bool = True) -> Array:
        sequence, _ = self.bert(input_ids, input_mask, segment_ids, deterministic)
        sequence = self.dropout(sequence, deterministic=deterministic)
        return self.classifier(sequence).astype(jnp.float32)


class BertForQuestionAnswering(nn.Module):
    """Start and end logits [batch, length] of the answer span."""
    config: BertConfig

    def setup(self):
        self.bert = BertModel(self.config, add_pooling_layer=False)
        self.qa_outputs = dense(self.config, 2, ("embed", None), "qa_outputs")

    def __call__(self, input_ids: Array, input_mask: Array, segment_ids: Array,
                 deterministic: bool = True) -> dict[str, Array]:
        sequence, _ = self.bert(input_ids, input_mask, segment_ids, deterministic)
        logits = self.qa_outputs(sequence).astype(jnp.float32)
        return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}


def model_of_kind(config: BertConfig, kind: str, num_labels: int = 2) -> nn.Module:
    """The Flax model of a kind of `convert.parameter_table.HEADS`: a task head's, or
    `BertForPreTraining` for "pretraining" and "encoder" (whose parameters are a subset)."""
    if kind == "sequence_classification":
        return BertForSequenceClassification(config, num_labels)
    if kind == "token_classification":
        return BertForTokenClassification(config, num_labels)
    if kind == "question_answering":
        return BertForQuestionAnswering(config)
    if kind in ("pretraining", "encoder"):
        return BertForPreTraining(config)
    raise ValueError(f"no model of kind {kind!r}; known: pretraining, encoder, {', '.join(TASK_KINDS)}")


def task_head_of(params: dict) -> tuple[str, int] | None:
    """(model kind, number of outputs) of the task head an unboxed parameter tree holds (scanned
    or not), or None for a model without one (pretraining, an encoder)."""
    if "qa_outputs" in params:
        return "question_answering", 2
    if "classifier" in params:
        outputs = params["classifier"]["kernel"].shape[-1]
        # Only the sequence classifier has a pooler (transformers' token classifier has none, as ours).
        pooled = "pooler" in params["bert"]
        return ("sequence_classification" if pooled else "token_classification"), int(outputs)
    return None
