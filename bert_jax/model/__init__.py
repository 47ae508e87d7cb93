"""The BERT model in Flax: the encoder (`bert`), its pretraining heads (`pretraining`), and the
FLOP count behind MFU (`flops`). The classes a user builds are importable from here."""

from bert_jax.model.bert import BertConfig, BertModel, scan_params, unscan_params
from bert_jax.model.pretraining import BertForPreTraining

__all__ = ["BertConfig", "BertModel", "BertForPreTraining", "scan_params", "unscan_params"]
