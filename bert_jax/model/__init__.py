"""The BERT model in Flax: the encoder (`bert`), its pretraining heads (`pretraining`), the
sentence-embedding head (`sentence`), and the FLOP count behind MFU (`flops`). The classes a user
builds are importable from here."""

from bert_jax.model.bert import BertConfig, BertModel, scan_params, unscan_params
from bert_jax.model.pretraining import BertForPreTraining
from bert_jax.model.sentence import SentenceConfig

__all__ = ["BertConfig", "BertForPreTraining", "BertModel", "SentenceConfig", "scan_params", "unscan_params"]
