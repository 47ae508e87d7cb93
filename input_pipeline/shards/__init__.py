"""The on-disk format of pretraining data: TFRecord framing (`tfrecord`), Google's example
features (`features`) and the manifest beside the shards (`manifest`)."""
