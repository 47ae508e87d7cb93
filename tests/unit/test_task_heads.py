"""The fine-tuning heads against `transformers` (PyTorch): a tiny random
`BertForSequenceClassification` (classification and regression), `BertForTokenClassification` and
`BertForQuestionAnswering`, every parameter moved off its initial value, saved by
`save_pretrained`, imported: our logits are theirs within 1e-5 on a padded batch of sentence
pairs. Exported again, `transformers` loads our directory as the same class with the same labels
(`id2label`, `label2id`, `problem_type`) and computes identical logits, and importing the export
gives back the same bits. Google's names for the heads (`run_classifier.py`, `run_squad.py`) are
those of the parameter table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bert_jax.convert.hf_export import Labels, export_to_huggingface
from bert_jax.convert.hf_import import load_huggingface
from bert_jax.convert.imported import complete_params, flatten
from bert_jax.convert.parameter_table import parameter_table
from bert_jax.model import model_of_kind
from tests.support.task_models import CASES, KINDS, VOCAB, tiny_transformers_model

TOLERANCE = 1e-5


def pair_batch(seed: int = 0, rows: int = 4, length: int = 24) -> dict[str, np.ndarray]:
    """Padded sentence pairs: `[CLS] A [SEP] B [SEP]`, segment ids 0 then 1, varied lengths."""
    rng = np.random.default_rng(seed)
    ids, mask, segments = (np.zeros((rows, length), np.int32) for _ in range(3))
    for row in range(rows):
        a, b = rng.integers(2, 9, 2) + row
        tokens = [2, *rng.integers(5, len(VOCAB), a), 3, *rng.integers(5, len(VOCAB), b), 3]
        ids[row, :len(tokens)], mask[row, :len(tokens)] = tokens, 1
        segments[row, a + 2:len(tokens)] = 1
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


def transformers_logits(model, batch: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = model(input_ids=torch.tensor(batch["input_ids"], dtype=torch.long),
                    attention_mask=torch.tensor(batch["input_mask"], dtype=torch.long),
                    token_type_ids=torch.tensor(batch["segment_ids"], dtype=torch.long))
    if hasattr(out, "start_logits"):
        return np.stack([out.start_logits.numpy(), out.end_logits.numpy()])
    return out.logits.numpy()


def our_logits(imported, params, batch: dict[str, np.ndarray]) -> np.ndarray:
    model = model_of_kind(imported.config, imported.model_kind, imported.num_labels)
    out = model.apply({"params": params}, batch["input_ids"], batch["input_mask"], batch["segment_ids"])
    if isinstance(out, dict):
        return np.stack([np.asarray(out["start_logits"]), np.asarray(out["end_logits"])])
    return np.asarray(out)


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_import_and_export_match_transformers(case, tmp_path, vocab_file):
    import transformers

    theirs = tiny_transformers_model(case)
    theirs.save_pretrained(tmp_path / "theirs")
    batch = pair_batch()
    reference = transformers_logits(theirs, batch)
    valid = batch["input_mask"].astype(bool)

    imported = load_huggingface(tmp_path / "theirs", KINDS[case])
    assert imported.missing == [] and imported.ignored == []
    assert imported.num_labels == CASES[case][1]
    ours = our_logits(imported, imported.params, batch)
    assert ours.shape == reference.shape
    # Padding positions' logits are not compared: nothing reads them, and their attention
    # over the keys differs in a masked way between the implementations.
    compared = (ours[:, valid], reference[:, valid]) if case == "question_answering" else (
        (ours[valid], reference[valid]) if case == "token_classification" else (ours, reference))
    difference = float(np.abs(compared[0] - compared[1]).max())
    print(f"{case}: max abs logit difference {difference:.3g}")
    assert difference <= TOLERANCE

    labels = Labels(imported.labels, CASES[case][2] or "") if imported.labels else None
    export_to_huggingface(imported.params, imported.config, vocab_file, True, tmp_path / "ours",
                          imported.model_kind, labels)
    written = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert written["architectures"] == [CASES[case][0]]
    assert written["id2label"] == {str(i): f"label_{chr(97 + i)}" for i in range(CASES[case][1])}
    assert written["label2id"] == {f"label_{chr(97 + i)}": i for i in range(CASES[case][1])}
    if CASES[case][2]:
        assert written["problem_type"] == CASES[case][2]
    reloaded = getattr(transformers, CASES[case][0]).from_pretrained(tmp_path / "ours").eval()
    assert reloaded.config.problem_type == CASES[case][2]
    assert reloaded.config.id2label == theirs.config.id2label
    np.testing.assert_array_equal(transformers_logits(reloaded, batch), reference)

    again = load_huggingface(tmp_path / "ours", KINDS[case])
    assert again.labels == imported.labels and again.problem_type == (CASES[case][2] or "")
    mine, back = flatten(imported.params), flatten(again.params)
    assert mine.keys() == back.keys()
    for key in mine:
        np.testing.assert_array_equal(back[key], mine[key], err_msg=key)


def test_a_pretrained_encoder_gets_a_fresh_head(tmp_path, vocab_file):
    """A `BertForPreTraining` read as a sequence classifier (what fine-tuning starts from): the
    encoder and pooler are its, the classifier is listed as missing and initialized afresh with
    the number of labels asked for; its masked-LM and next-sentence heads are listed as not used."""
    import transformers

    theirs = tiny_transformers_model("classification")
    pretrained = transformers.BertForPreTraining(theirs.config)
    pretrained.save_pretrained(tmp_path / "pretrained")
    imported = load_huggingface(tmp_path / "pretrained", "sequence_classification", num_labels=4)
    assert imported.missing == ["classifier/kernel", "classifier/bias"]
    assert all(name.startswith("cls.") for name in imported.ignored) and imported.ignored
    params = complete_params(imported)
    assert params["classifier"]["kernel"].shape == (32, 4)


@pytest.mark.parametrize("kind, google", [
    ("sequence_classification", {"classifier/kernel": "output_weights", "classifier/bias": "output_bias"}),
    ("question_answering", {"qa_outputs/kernel": "cls/squad/output_weights",
                            "qa_outputs/bias": "cls/squad/output_bias"}),
    ("token_classification", {"classifier/kernel": None, "classifier/bias": None}),
])
def test_google_names_of_the_heads(kind, google):
    """`run_classifier.py` writes `output_weights` [num_labels, hidden] at the top level,
    `run_squad.py` `cls/squad/output_weights` [2, hidden]; Google has no tagging head."""
    from bert_jax.model import BertConfig

    config = BertConfig(vocab_size=50, hidden_size=8, num_layers=1, num_heads=2, intermediate_size=16,
                        max_position_embeddings=16)
    heads = {"/".join(p.path): p for p in parameter_table(config, kind) if p.head and not p.path[0] == "bert"}
    assert {path: p.google and p.google.name for path, p in heads.items()} == google
    if kind != "token_classification":
        kernel = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
        assert heads[next(iter(google))].google.to_theirs(kernel).shape == (3, 8)
