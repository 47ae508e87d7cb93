"""The BERT model in Flax: the encoder (`bert`), its pretraining heads (`pretraining`), the
fine-tuning heads (`task_heads`), the sentence-embedding head (`sentence`), and the FLOP count
behind MFU (`flops`). The classes a user
builds are importable from here."""

from bert_jax.model.bert import BertConfig, BertModel, scan_params, unscan_params
from bert_jax.model.pretraining import BertForPreTraining
from bert_jax.model.sentence import SentenceConfig
from bert_jax.model.task_heads import (BertForQuestionAnswering, BertForSequenceClassification,
                                       BertForTokenClassification, model_of_kind, task_head_of)

__all__ = ["BertConfig", "BertForPreTraining", "BertForQuestionAnswering", "BertForSequenceClassification",
           "BertForTokenClassification", "BertModel", "SentenceConfig", "model_of_kind", "scan_params",
           "task_head_of", "unscan_params"]
