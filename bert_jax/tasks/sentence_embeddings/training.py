"""`bert-jax sbert-train`'s Python function: a Sentence-BERT run on the generic loop
(`training.loop.train`): its data read and tokenized once into memory, batches length-bucketed,
the objective (NLI, STS or contrastive pairs), evaluation during training with the best
parameters kept, checkpoints with the data position (exact resume), preemption and multi-host, as
pretraining has them.

The work directory it leaves is read like any other: `bert-jax encode` / `SentenceEncoder.load`
pool with its `sentence` head, `bert-jax export --sentence-transformers` writes a
sentence-transformers directory (the NLI classifier left out, as sentence-transformers leaves
it), and a later run may start from it (`train.init_from`: SBERT trains NLI, then STS).

Compiled programs: one train step per length bucket that a batch falls into (at most
`len(bucket_lengths(config))`, 3 by default: 32, 64, 128), the same for NLI, STS and pairs and
with GradCache; and as many evaluation programs, over the evaluation batches' buckets.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import jax
import ml_collections

from bert_jax.config.run import CheckpointConfig, LoopConfig, MeshConfig, OptimizerConfig, RunConfig
from bert_jax.config.validation import bert_config, sentence_config
from bert_jax.tasks.sentence_embeddings.evaluators import NliEvaluation, RetrievalEvaluation, StsEvaluation
from bert_jax.tasks.sentence_embeddings.objectives import (
    ContrastiveObjective,
    NliObjective,
    SentenceObjective,
    StsObjective,
)
from bert_jax.tasks.sentence_embeddings.training_config import (
    SENTENCE_RESUME_INVARIANTS,
    bucket_lengths,
    validate,
    weights_source,
)
from bert_jax.training.array_batches import ArrayData, LengthBuckets, steps_per_epoch
from bert_jax.training.loop import train
from bert_jax.training.objective import Evaluator
from input_pipeline.tasks.sentence_features import SentenceFeatures, sentence_features
from input_pipeline.tasks.sentence_pairs import SentenceData, read_sentence_data
from input_pipeline.tasks.truncation import TruncationReport
from input_pipeline.tokenizers.loading import load_tokenizer

logger = logging.getLogger("bert_jax")


def train_sentence_embeddings(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                              on_report: Callable[[dict[str, float]], None] | None = None) -> dict[str, float]:
    """Trains the Sentence-BERT run `config` (`training_config.sentence_training_config`) in
    `workdir`, resuming from its latest checkpoint if any.

    Returns the metrics of the last logged step ("train_" + name) and of the final evaluation
    ("eval_" + name), as `training.loop.train` does.
    """
    validate(config, jax.device_count(), jax.process_count())
    config = ml_collections.ConfigDict(config.to_dict())  # the copy gets the steps worked out below
    sbert, max_length = config.sbert, config.data.max_seq_length
    sentence = sentence_config(config)
    tokenizer = load_tokenizer(config.data.vocab_file, do_lower_case=config.data.do_lower_case)
    lengths = bucket_lengths(config)

    def features_of(source: str, format: str, fields: str) -> tuple[SentenceData, SentenceFeatures]:
        data = read_sentence_data(sbert.objective, source, format or None, fields or None,
                                  sbert.tfds_data_dir or None)
        report = TruncationReport(max_length)
        features = sentence_features(data, tokenizer, max_length, do_lower_case=sentence.do_lower_case,
                                     report=report)
        unlabeled = f"; {data.unlabeled:,} pairs without a gold label left out" if data.unlabeled else ""
        logger.info("%s: %s %s examples of %d texts%s; %s", source, f"{len(features):,}", sbert.objective,
                    data.num_sides, unlabeled, report.summary())
        return data, features

    train_data, train_features = features_of(sbert.train_file, sbert.format, sbert.fields)
    objective = _objective(config, train_data.num_sides)
    evaluator = None
    if sbert.eval_file:
        eval_data, eval_features = features_of(sbert.eval_file, sbert.eval_format or sbert.format,
                                               sbert.eval_fields or sbert.fields)
        evaluator = _evaluator(objective, sbert, eval_data, eval_features, lengths)

    batch_size = config.train.global_batch_size
    if not config.train.num_steps:
        config.train.num_steps = sbert.epochs * steps_per_epoch(len(train_features), batch_size)
    sequence_features = tuple(name for name in train_features.arrays if name.endswith(("_input_ids", "_input_mask")))
    data = ArrayData(train_features.arrays, batch_size, config.train.seed,
                     LengthBuckets(lengths, train_features.lengths, sequence_features))
    optimizer = OptimizerConfig.from_config(config.optimizer).with_warmup_fraction(
        sbert.warmup_fraction, config.train.num_steps)
    config.optimizer.warmup_steps = optimizer.warmup_steps
    run = RunConfig(model=bert_config(config), optimizer=optimizer, loop=LoopConfig.from_config(config.train),
                    checkpoints=CheckpointConfig(every=config.train.checkpoint_every, keep=config.train.keep_checkpoints,
                                                 best_metric=sbert.best_metric if evaluator else ""),
                    mesh=MeshConfig.from_config(config),
                    init_from=weights_source(config.train.init_from) if config.train.init_from else "",
                    user_config=config.to_dict(), resume_invariants=SENTENCE_RESUME_INVARIANTS)
    logger.info("Sentence-BERT %s: %d steps of %d examples; length buckets %s", sbert.objective,
                run.loop.num_steps, batch_size, lengths)
    return train(run, objective, data, workdir, evaluator=evaluator, on_report=on_report)


def _objective(config: ml_collections.ConfigDict, num_sides: int) -> SentenceObjective:
    model, sentence, length = bert_config(config), sentence_config(config), config.data.max_seq_length
    objective = config.sbert.objective
    if objective == "nli":
        return NliObjective(model, sentence, length)
    if objective == "sts":
        return StsObjective(model, sentence, length)
    return ContrastiveObjective(model, sentence, length, num_negatives=num_sides - 2,
                                scale=config.sbert.scale, mini_batch_size=config.sbert.mini_batch_size)


def _evaluator(objective: SentenceObjective, sbert: ml_collections.ConfigDict, data: SentenceData,
               features: SentenceFeatures, lengths: tuple[int, ...]) -> Evaluator:
    if sbert.objective == "nli":
        return NliEvaluation(objective, features, sbert.eval_batch_size, lengths)
    if sbert.objective == "sts":
        return StsEvaluation(objective, features, sbert.eval_batch_size, lengths)
    return RetrievalEvaluation(objective, data, features, sbert.eval_batch_size, lengths)
