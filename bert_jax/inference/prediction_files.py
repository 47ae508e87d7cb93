"""The files `bert-jax predict` writes, in the layouts their readers expect:

* classification and regression: GLUE's submission TSV (`index<TAB>prediction`, a header line,
  one row per input in input order). Classes are written by name (as Hugging Face's `run_glue.py`
  writes them), except where GLUE's server expects the class index (CoLA, SST-2, MRPC, QQP: 0/1 in
  the order of GLUE's label lists); scores with three decimals.
* tagging: CoNLL columns, one word per line (`word<TAB>predicted tag`, or `word<TAB>gold<TAB>
  predicted` when the input had tags, the layout `conlleval` reads), a blank line after each
  sentence.
* question answering: SQuAD's `predictions.json` (`{id: answer}`), and for SQuAD 2.0
  `null_odds.json` (`{id: no-answer score minus the best span's}`), the files the official
  evaluation script reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from input_pipeline.tasks.formats import TaskFormat
from input_pipeline.tasks.records import TaggedSentence

# GLUE tasks whose submission holds class indices rather than names.
GLUE_INDEX_LABELS = ("glue/cola", "glue/sst2", "glue/mrpc", "glue/qqp")


def glue_predictions(predictions: Sequence[str | float], task_format: TaskFormat | None = None) -> str:
    """The submission TSV for class names or regression scores, in input order. For the GLUE
    tasks of `GLUE_INDEX_LABELS` a class is written as its index in the format's label list.

    Raises ValueError for a class the format's label list lacks (a model trained on other labels).
    """
    lines = ["index\tprediction"]
    by_index = task_format is not None and task_format.name in GLUE_INDEX_LABELS
    for index, prediction in enumerate(predictions):
        if isinstance(prediction, float):
            value = f"{prediction:.3f}"
        elif by_index:
            if prediction not in task_format.label_names:
                raise ValueError(f"the model predicts {prediction!r}, which is not one of "
                                 f"{task_format.name}'s labels {list(task_format.label_names)}; "
                                 f"GLUE's submission needs the model fine-tuned on that task.")
            value = str(task_format.label_names.index(prediction))
        else:
            value = prediction
        lines.append(f"{index}\t{value}")
    return "\n".join(lines) + "\n"


def conll_predictions(sentences: Sequence[TaggedSentence], tags: Sequence[Sequence[str]]) -> str:
    """CoNLL columns: each word with its gold tag (if the sentence has tags) and the predicted
    one; a blank line after each sentence."""
    lines = []
    for sentence, predicted in zip(sentences, tags):
        for w, (word, tag) in enumerate(zip(sentence.words, predicted)):
            gold = f"\t{sentence.tags[w]}" if sentence.tags is not None else ""
            lines.append(f"{word}{gold}\t{tag}")
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def squad_json(values: dict) -> str:
    """`predictions.json` or `null_odds.json`, as `run_squad.py` writes them."""
    return json.dumps(values, indent=4, ensure_ascii=False) + "\n"
