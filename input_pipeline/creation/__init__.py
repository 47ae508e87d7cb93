"""Raw text to TFRecord shards of masked, NSP-paired instances: locally over worker processes
(`create_pretraining_data`) or as an Apache Beam pipeline (`beam_pipeline`)."""
