"""BERT-Large on a TPU pod slice: bfloat16, LAMB at a large batch (You et al., 2020: BERT
pretraining in 76 minutes), both phases from one config, parameters and optimizer state sharded
over the hosts (fsdp), data and work dir on Cloud Storage.

  python launch/tpu_pod.py all --name bert-pod --zone us-central2-b --accelerator-type v4-32 \
      --config tpu_pod_bert_large --workdir gs://BUCKET/runs/large \
      --set data.train_files=gs://BUCKET/shards128/ --set data.phase2_train_files=gs://BUCKET/shards512/ \
      --set data.vocab_file=gs://BUCKET/vocab.txt

Batch 4096 with LAMB at 2e-3 and 10% warm-up is a moderate point on the paper's scaling curve
(it trains at batch 32k-64k); tune the rate for the batch the slice holds.
"""

from bert_jax.config.defaults import default_config, model_size


def get_config():
    config = default_config()
    config.model.update(model_size("large"))
    config.model.dtype = "bfloat16"
    config.model.remat = "dots_no_batch"
    config.optimizer.name = "lamb"
    config.optimizer.learning_rate = 2e-3
    config.train.global_batch_size = 4096
    config.train.num_steps = 62_500
    config.optimizer.warmup_steps = 6_250
    config.train.checkpoint_every = 1_000
    config.data.phase2_max_seq_length = 512
    config.data.phase2_max_predictions_per_seq = 80
    config.data.phase2_start_fraction = 0.9
    # Parameters and optimizer state sharded over all devices; batches split the same way.
    config.mesh.shape = {"data": 1, "fsdp": -1, "tensor": 1}
    return config
