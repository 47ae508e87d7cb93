"""Training parity with sentence-transformers 6.2.0, shared by the tiny-BERT unit test and the
MiniLM integration test: the same initial weights, the same batches, dropout off, the same AdamW
(eps 1e-6, weight decay except on biases and LayerNorm, gradient norm clipped at 1, linear warm-up
then decay), trained by their loss in a plain torch loop (their trainer needs `datasets`) and by
our objective through the loop's jitted step (`training.loop.jit_train_step`, on a one-device
mesh); each step's loss is returned for the test to compare.

Our batches have a fixed number of rows and a fixed length; their last batch is partial, and ours
holds the same real rows plus padding rows of weight 0 that copy real texts (so that, were they
counted as negatives or examples, the losses would differ)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.config.run import LoopConfig, OptimizerConfig
from bert_jax.model import BertConfig, SentenceConfig
from bert_jax.parallel import sharding
from bert_jax.state.optimizer import make_optimizer
from bert_jax.state.train_state import TrainState, state_shardings
from bert_jax.tasks.sentence_embeddings.objectives import (
    ContrastiveObjective,
    NliObjective,
    SentenceObjective,
    StsObjective,
)
from bert_jax.training.loop import jit_train_step

STEPS, ROWS, LAST_ROWS, LENGTH = 20, 8, 5, 32
OPTIMIZER = OptimizerConfig(learning_rate=1e-3, warmup_steps=4, eps=1e-6, weight_decay=0.01, clip_norm=1.0)
# A trained model fine-tunes at SBERT's rate: at 1e-3 Adam's steps are so large that float32
# round-off (the two frameworks sum in different orders) grows chaotically to 1e-2 within 10 steps.
FINE_TUNING = dataclasses.replace(OPTIMIZER, learning_rate=2e-5)
LOSSES = ("SoftmaxLoss", "CosineSimilarityLoss", "MultipleNegativesRankingLoss")
WORDS = ["the", "cat", "dog", "sat", "on", "mat", "a", "bird", "sings", "in", "tree", "river", "flows", "to",
         "sea", "light", "warm", "cold", "night", "day", "children", "play", "with", "ball", "old", "man",
         "reads", "book", "near", "window", "rain", "falls", "over", "quiet", "town"]


def tiny_huggingface_bert(directory: Path) -> Path:
    """A tiny randomly initialized `transformers.BertModel` (dropout 0) with an uncased WordPiece
    vocabulary of WORDS, and its tokenizer, saved by transformers itself."""
    import torch  # the reference only: torch stays out of the code under test
    import transformers

    directory.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *sorted(set(WORDS))]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    transformers.BertModel(config).save_pretrained(directory)
    transformers.BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=True).save_pretrained(directory)
    return directory


def _sentence(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=rng.integers(3, 12))) + "."


def training_batches(loss_name: str, seed: int = 0) -> list[dict]:
    """STEPS batches of ROWS examples (the last of LAST_ROWS): each {"columns": [texts per
    side], "labels": NLI labels or STS scores in [0, 1], or None}."""
    rng = np.random.default_rng(seed)
    batches = []
    for step in range(STEPS):
        rows = LAST_ROWS if step == STEPS - 1 else ROWS
        first = [_sentence(rng) for _ in range(rows)]
        # Positives share words with their anchors, so the ranking loss has something to learn.
        second = [" ".join(s.split()[: len(s.split()) // 2 + 1]) + " " + _sentence(rng) for s in first]
        labels = None
        if loss_name == "SoftmaxLoss":
            labels = rng.integers(0, 3, rows)
        elif loss_name == "CosineSimilarityLoss":
            labels = rng.random(rows).astype(np.float32)
        batches.append({"columns": [first, second], "labels": labels})
    return batches


def reference_loss(model, loss_name: str):
    """sentence-transformers' `loss_name` on `model` (a SentenceTransformer, put in eval mode:
    dropout off); SoftmaxLoss's classifier drawn from torch seed 1."""
    import torch
    from sentence_transformers.sentence_transformer import losses

    model.eval()
    if loss_name == "SoftmaxLoss":
        torch.manual_seed(1)
        return losses.SoftmaxLoss(model, model.get_embedding_dimension(), num_labels=3)
    return getattr(losses, loss_name)(model)


def reference_losses(loss, batches: list[dict], optimizer_config: OptimizerConfig = OPTIMIZER) -> list[float]:
    """Each step's value of `loss` (a `reference_loss`) training its model, and its classifier,
    with torch's AdamW in a plain torch loop."""
    import torch  # the reference only: torch stays out of the code under test
    import transformers

    named = list(loss.named_parameters())
    no_decay = [p for n, p in named if "bias" in n or "LayerNorm" in n]
    decay = [p for n, p in named if not ("bias" in n or "LayerNorm" in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": optimizer_config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=optimizer_config.learning_rate, betas=(optimizer_config.b1, optimizer_config.b2),
                                  eps=optimizer_config.eps)
    schedule = transformers.get_linear_schedule_with_warmup(optimizer, optimizer_config.warmup_steps, STEPS)
    values = []
    for batch in batches:
        features = [loss.model.preprocess(column) for column in batch["columns"]]
        labels = None if batch["labels"] is None else torch.tensor(batch["labels"])
        value = loss(features, labels)
        value.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], optimizer_config.clip_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        values.append(value.item())
    return values


def our_batch(model, batch: dict, sides: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The batch as our objectives take it: ROWS rows of LENGTH tokens, tokenized by `model`'s
    own tokenizer; the rows past the real ones copy real texts and weigh 0."""
    real = len(batch["columns"][0])
    arrays = {}
    for side, column in zip(sides, batch["columns"]):
        padded = column + [column[i % real] for i in range(ROWS - real)]
        features = model.preprocess(padded)
        ids, mask = features["input_ids"].numpy(), features["attention_mask"].numpy()
        assert ids.shape[1] <= LENGTH
        arrays[f"{side}_input_ids"] = np.pad(ids, ((0, 0), (0, LENGTH - ids.shape[1]))).astype(np.int32)
        arrays[f"{side}_input_mask"] = np.pad(mask, ((0, 0), (0, LENGTH - mask.shape[1]))).astype(np.int32)
    if batch["labels"] is not None:
        labels = np.resize(batch["labels"], ROWS)
        arrays["labels" if labels.dtype.kind == "i" else "scores"] = labels.astype(
            np.int32 if labels.dtype.kind == "i" else np.float32)
    arrays["example_weights"] = (np.arange(ROWS) < real).astype(np.float32)
    return arrays


def objective_for(loss_name: str, config: BertConfig, sentence: SentenceConfig) -> SentenceObjective:
    """Our objective for sentence-transformers' `loss_name`, dropout off."""
    config = dataclasses.replace(config, hidden_dropout_rate=0.0, attention_dropout_rate=0.0)
    kind = {"SoftmaxLoss": NliObjective, "CosineSimilarityLoss": StsObjective,
            "MultipleNegativesRankingLoss": ContrastiveObjective}[loss_name]
    return kind(config, sentence, max_seq_length=LENGTH)


def our_losses(objective: SentenceObjective, params: dict, batches: list[dict], tokenizing_model,
               optimizer_config: OptimizerConfig = OPTIMIZER) -> list[float]:
    """Each step's loss of `objective` trained from `params` (numpy, {"bert": ..., and the
    classifier}) by `training.loop.jit_train_step` with `make_optimizer(optimizer_config)`."""
    optimizer, schedule = make_optimizer(optimizer_config, STEPS)
    mesh = sharding.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, jax.devices()[:1])
    shardings = state_shardings(objective.init_params, optimizer, mesh)
    expected = jax.tree.structure(shardings.params)
    assert jax.tree.structure(params) == expected, f"{jax.tree.structure(params)} != {expected}"
    params = jax.tree.map(jnp.asarray, params)
    state = jax.device_put(TrainState(step=jnp.zeros((), jnp.int32), params=params,
                                      opt_state=optimizer.init(params)), shardings)
    step = jit_train_step(objective, optimizer, schedule, LoopConfig(num_steps=STEPS, global_batch_size=ROWS),
                          mesh, sharding.LOGICAL_RULES, shardings)
    values = []
    for batch in batches:
        arrays = our_batch(tokenizing_model, batch, objective.sides)
        state, metrics = step(state, jax.device_put(arrays, sharding.batch_sharding(mesh)))
        assert float(metrics["skipped"]) == 0.0
        values.append(float(metrics["loss"]))
    return values


def classifier_params(reference_loss) -> dict[str, np.ndarray]:
    """SoftmaxLoss's classifier as our `nli_classifier` parameters (its initial values, read
    before training: call on a fresh loss)."""
    return {"kernel": reference_loss.classifier.weight.detach().numpy().T.copy(),
            "bias": reference_loss.classifier.bias.detach().numpy().copy()}
