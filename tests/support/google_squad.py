"""The functions of Google's `run_squad.py` (the `bert-tensorflow` wheel), run as published: the
reference for SQuAD features and predictions.

They are taken from the installed `bert/run_squad.py` by name and run without importing the
module (whose import needs TensorFlow 1's `tf.contrib` for its model code): their globals are the
modules they use (`bert.tokenization`, `tensorflow.compat.v1` for `tf.gfile`/`tf.logging`) and, for
`FLAGS`, a namespace with the three flags they read.
"""

from __future__ import annotations

import ast
import collections
import importlib.util
import json
import math
import os
import types

_GOOGLE_FUNCTIONS = ("SquadExample", "InputFeatures", "read_squad_examples", "convert_examples_to_features",
                     "_improve_answer_span", "_check_is_max_context", "write_predictions", "get_final_text",
                     "_get_best_indexes", "_compute_softmax")


def google_run_squad(version_2_with_negative: bool, monkeypatch) -> types.SimpleNamespace:
    """The functions of Google's `run_squad.py`, with the given `--version_2_with_negative`."""
    import six
    import tensorflow.compat.v1 as tf
    from bert import tokenization

    # The wheel's tokenizer reads one absl flag of its own, unparsed outside a script.
    monkeypatch.setattr(tokenization, "FLAGS", types.SimpleNamespace(preserve_unused_tokens=False))

    path = os.path.join(os.path.dirname(importlib.util.find_spec("bert").origin), "run_squad.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    nodes = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in _GOOGLE_FUNCTIONS]
    assert sorted(n.name for n in nodes) == sorted(_GOOGLE_FUNCTIONS)
    namespace = {"collections": collections, "json": json, "math": math, "six": six, "tf": tf,
                 "tokenization": tokenization,
                 "FLAGS": types.SimpleNamespace(version_2_with_negative=version_2_with_negative,
                                                null_score_diff_threshold=0.0, verbose_logging=False)}
    exec(compile(ast.Module(body=nodes, type_ignores=[]), path, "exec"), namespace)  # noqa: S102 (the reference)
    return types.SimpleNamespace(**{name: namespace[name] for name in _GOOGLE_FUNCTIONS},
                                 FLAGS=namespace["FLAGS"], tokenization=tokenization)
