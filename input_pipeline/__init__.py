"""Text to pretraining batches: tokenizer, vocabulary, sentence pairs, masking, shards, reader.

TensorFlow is used here only to write and read TFRecords and to run tf.data. Its start-up
messages (log lines, and the notice that its oneDNN kernels, which record parsing does not use,
are on) are silenced before any module imports it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
