"""Shards to batches: the tf.data reader with its saved position (`reader`) and sequence packing
(`packing`)."""
