"""`bert-jax predict` on tiny fine-tuned models saved by `transformers` (run in-process): GLUE's
submission TSV (class names; indices for SST-2; regression scores), CoNLL columns, SQuAD 2.0's
predictions.json and null_odds.json; the predicted classes are `transformers`' argmax; outputs are
never written over existing files without --overwrite; bad input names its file, line and field."""

from __future__ import annotations

import json

import numpy as np

from bert_jax.cli import main
from tests.support.task_models import VOCAB, tiny_transformers_model

SST2_LABELS = ("negative", "positive")


def saved(case: str, directory, labels=None):
    model = tiny_transformers_model(case, dropout=0.0)
    if labels:
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {name: i for i, name in enumerate(labels)}
    model.save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return model


def sst2_model(directory, inputs: list[list[int]]):
    """A tiny random classifier of SST-2's two labels, saved by `transformers`."""
    import torch
    import transformers

    config = tiny_transformers_model("classification").config
    config.num_labels = 2
    config.id2label, config.label2id = dict(enumerate(SST2_LABELS)), {n: i for i, n in enumerate(SST2_LABELS)}
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(1)
    model = transformers.BertForSequenceClassification(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
        # A threshold between the texts' scores, so that both classes get predicted.
        margins = [float(np.diff(model(torch.tensor([ids])).logits[0].numpy())[0]) for ids in inputs]
        model.classifier.bias[1] -= float(np.median(margins))
    model.save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return model


def sentences(rng, n: int, words: tuple[int, int] = (2, 9)) -> list[str]:
    return [" ".join(f"w{i}" for i in rng.integers(0, 95, rng.integers(*words))) for _ in range(n)]


def test_classification_regression_tagging_and_qa_files(tmp_path, capsys):
    import torch

    rng = np.random.default_rng(0)
    texts = sentences(rng, 12)
    # SST-2's test.tsv as GLUE distributes it: index and sentence, no label.
    (tmp_path / "test.tsv").write_text("index\tsentence\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(texts)))
    ids = [[2, *(VOCAB.index(w) for w in t.split()), 3] for t in texts]
    model = sst2_model(tmp_path / "sst2", ids)
    out = tmp_path / "SST-2.tsv"
    common = ["--input", str(tmp_path / "test.tsv")]
    with torch.no_grad():
        expected = [int(model(torch.tensor([i])).logits.argmax()) for i in ids]
    assert 0 < sum(expected) < len(expected)  # both classes occur
    assert main(["predict", "--task", "classification", "--model", str(tmp_path / "sst2"), "--format", "glue/sst2",
                 "--output", str(out), *common]) == 0
    # GLUE's server takes SST-2's classes as 0/1.
    assert out.read_text().splitlines() == ["index\tprediction", *(f"{i}\t{e}" for i, e in enumerate(expected))]
    # As a generic TSV, the predictions are the names.
    names = tmp_path / "names.tsv"
    assert main(["predict", "--task", "classification", "--model", str(tmp_path / "sst2"), "--output", str(names),
                 *common]) == 0
    with torch.no_grad():
        assert names.read_text().splitlines()[1:] == [
            f"{i}\t{SST2_LABELS[e]}" for i, e in enumerate(expected)]
    # Never over an existing file without --overwrite; with it, replaced.
    assert main(["predict", "--task", "classification", "--model", str(tmp_path / "sst2"), "--output", str(names),
                 *common]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["predict", "--task", "classification", "--model", str(tmp_path / "sst2"), "--output", str(names),
                 "--overwrite", *common]) == 0

    # Regression on pairs of a JSON Lines file, fields named.
    regression = saved("regression", tmp_path / "stsb")
    pairs = list(zip(sentences(rng, 5), sentences(rng, 5)))
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps({"a": a, "b": b}) + "\n" for a, b in pairs))
    scores = tmp_path / "STS-B.tsv"
    assert main(["predict", "--task", "regression", "--model", str(tmp_path / "stsb"), "--input",
                 str(tmp_path / "pairs.jsonl"), "--text-fields", "a", "b", "--output", str(scores)]) == 0
    with torch.no_grad():
        for line, (a, b) in zip(scores.read_text().splitlines()[1:], pairs):
            a_ids, b_ids = [VOCAB.index(w) for w in a.split()], [VOCAB.index(w) for w in b.split()]
            value = regression(torch.tensor([[2, *a_ids, 3, *b_ids, 3]]),
                               token_type_ids=torch.tensor([[0] * (len(a_ids) + 2) + [1] * (len(b_ids) + 1)])).logits
            assert abs(float(line.split("\t")[1]) - float(value)) <= 5e-4
    # A missing field: the file, line and field.
    assert main(["predict", "--task", "regression", "--model", str(tmp_path / "stsb"), "--input",
                 str(tmp_path / "pairs.jsonl"), "--text-fields", "a", "c", "--output", str(tmp_path / "x.tsv")]) == 2
    assert "pairs.jsonl:1: field 'c': missing" in capsys.readouterr().err

    # Tagging: CoNLL with gold tags in the last column -> word, gold, predicted.
    saved("token_classification", tmp_path / "ner", labels=("O", "B-PER", "I-PER", "B-LOC", "I-LOC"))
    tagged = [t.split() for t in sentences(rng, 4)]
    (tmp_path / "test.conll").write_text("".join("".join(f"{w} NN O\n" for w in s) + "\n" for s in tagged))
    conll = tmp_path / "ner.conll"
    assert main(["predict", "--task", "tagging", "--model", str(tmp_path / "ner"), "--input",
                 str(tmp_path / "test.conll"), "--output", str(conll)]) == 0
    from bert_jax.inference.token_classifier import TokenClassifier
    expected_tags = TokenClassifier.load(tmp_path / "ner").tag_words(tagged)
    blocks = [b.splitlines() for b in conll.read_text().strip("\n").split("\n\n")]
    assert [[line.split("\t") for line in b] for b in blocks] == [
        [[w, "O", t] for w, t in zip(s, ts)] for s, ts in zip(tagged, expected_tags)]

    # SQuAD 2.0: predictions.json and null_odds.json beside it.
    saved("question_answering", tmp_path / "qa")
    contexts = sentences(rng, 3, (20, 40))
    squad = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": c, "qas": [{"id": f"q{i}", "question": q, "answers": [], "is_impossible": True}]}
        for i, (c, q) in enumerate(zip(contexts, sentences(rng, 3)))]}]}
    (tmp_path / "dev.json").write_text(json.dumps(squad))
    (tmp_path / "qa_out").mkdir()
    predictions = tmp_path / "qa_out" / "predictions.json"
    assert main(["predict", "--task", "qa", "--model", str(tmp_path / "qa"), "--input", str(tmp_path / "dev.json"),
                 "--output", str(predictions), "--version-2", "--max-seq-length", "32", "--doc-stride", "8", "--max-query-length", "10"]) == 0
    answers = json.loads(predictions.read_text())
    null_odds = json.loads((tmp_path / "qa_out" / "null_odds.json").read_text())
    assert set(answers) == set(null_odds) == {"q0", "q1", "q2"}
    for i, answer in enumerate(answers.values()):
        assert answer in contexts[i]
    assert sorted(p.name for p in (tmp_path / "qa_out").iterdir()) == ["null_odds.json", "predictions.json"]


def test_a_model_without_the_task_head_is_refused(tmp_path, capsys):
    import transformers

    model = tiny_transformers_model("classification")
    transformers.BertForPreTraining(model.config).save_pretrained(tmp_path / "pretrained")
    (tmp_path / "pretrained" / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (tmp_path / "in.tsv").write_text("sentence\nw1 w2\n")
    assert main(["predict", "--task", "classification", "--model", str(tmp_path / "pretrained"), "--input",
                 str(tmp_path / "in.tsv"), "--output", str(tmp_path / "out.tsv")]) == 2
    assert "has no sequence classification head" in capsys.readouterr().err
    assert not (tmp_path / "out.tsv").exists()
