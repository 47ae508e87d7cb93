"""A toy task that is not pretraining, for the tests of the generic training loop: a regression
head on the encoder's pooled [CLS] output, its mean-squared-error objective, an evaluation on the
host over every prediction (MSE, Pearson's r), and examples whose score is the share of low token
ids (`examples`)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.model import BertConfig, BertModel
from bert_jax.model.bert import dense
from bert_jax.training.array_batches import ArrayBatches
from bert_jax.training.objective import Objective

SEQ = 16


class BertRegressor(nn.Module):
    """A score per example from the pooled [CLS] output."""
    config: BertConfig

    def setup(self):
        self.bert = BertModel(self.config)
        self.regressor = dense(self.config, 1, ("embed", None), "regressor")

    def __call__(self, input_ids, input_mask, segment_ids, deterministic: bool = True):
        _, pooled = self.bert(input_ids, input_mask, segment_ids, deterministic)
        return self.regressor(pooled)[..., 0].astype(jnp.float32)


class RegressionObjective(Objective):
    """Mean squared error over the real examples of the global batch."""

    def __init__(self, config: BertConfig):
        self.model = BertRegressor(config)

    def init_params(self, rng):
        ids = jnp.zeros((1, SEQ), jnp.int32)
        return self.model.init(rng, ids, ids, ids)["params"]

    def predict(self, params, batch, dropout_key=None):
        return self.model.apply({"params": params}, batch["input_ids"], batch["input_mask"],
                                batch["segment_ids"], deterministic=dropout_key is None,
                                rngs=None if dropout_key is None else {"dropout": dropout_key})

    def totals(self, batch):
        return {"examples": jnp.sum(batch["example_weights"])}

    def loss(self, params, batch, totals, dropout_key):
        weights = batch["example_weights"]
        squared = jnp.sum(weights * (self.predict(params, batch, dropout_key) - batch["labels"]) ** 2)
        return squared / totals["examples"], {"squared_error_sum": squared, "examples": jnp.sum(weights)}

    def summarize(self, sums):
        return {"loss": sums["squared_error_sum"] / sums["examples"]}

    def step_metrics(self, batch, totals):
        return {"sequences": totals["examples"]}


class RegressionEvaluator:
    """MSE and Pearson's r over every prediction of the evaluation set, on the host."""

    def __init__(self, objective: RegressionObjective, arrays: dict, batch_size: int):
        self.objective, self.arrays, self.batch_size = objective, arrays, batch_size

    def batches(self):
        return ArrayBatches(self.arrays, self.batch_size, shuffle=False, repeat=False,
                            process_index=jax.process_index(), process_count=jax.process_count())

    def outputs(self, params, batch):
        return {"prediction": self.objective.predict(params, batch), "label": batch["labels"],
                "weight": batch["example_weights"]}

    def metrics(self, outputs):
        outputs = list(outputs)
        every = {k: np.concatenate([o[k] for o in outputs]) for k in ("prediction", "label", "weight")}
        real = every["weight"] > 0
        prediction, label = every["prediction"][real], every["label"][real]
        return {"mse": float(np.mean((prediction - label) ** 2)),
                "pearson": float(np.corrcoef(prediction, label)[0, 1]), "examples": float(real.sum())}


def examples(n: int, seed: int) -> dict[str, np.ndarray]:
    """`n` sequences of 6 to `SEQ` random tokens, each labelled with its share of ids below 100."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(6, SEQ + 1, n)
    mask = (np.arange(SEQ)[None] < lengths[:, None]).astype(np.int32)
    ids = rng.integers(5, 200, (n, SEQ)).astype(np.int32) * mask
    labels = ((ids < 100) & (mask > 0)).sum(1) / lengths
    return {"input_ids": ids, "input_mask": mask, "segment_ids": np.zeros_like(ids),
            "labels": labels.astype(np.float32)}
