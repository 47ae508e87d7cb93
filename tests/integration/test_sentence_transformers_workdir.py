"""sentence-transformers models through a work directory, against `sentence_transformers` 6.2.0:
imported (`bert-jax import`, `import_sentence_transformers`), the head goes to the run config's
`sentence` section; `encode` from the work directory and the export made from it
(`bert-jax export --sentence-transformers`, `export_workdir`) give the source's vectors within
1e-5: all-MiniLM-L6-v2 (unit norms) and a tiny random BERT; `bert-jax encode` on an export uses
its head unless --pooling or --[no-]normalize say otherwise. The in-process checks of the format:
tests/integration/test_sentence_transformers.py."""

from __future__ import annotations

import json

import ml_collections
import numpy as np

from bert_jax.cli import main
from bert_jax.config.validation import sentence_config
from bert_jax.convert.sentence_transformers import (
    export_sentence_transformers,
    export_workdir,
    import_sentence_transformers,
    read_sentence_config,
)
from bert_jax.inference.encode import SentenceEncoder
from bert_jax.model import SentenceConfig
from tests.support.sentence_transformers_models import TEXTS, assert_close, sentence_transformers_encode


def test_minilm_through_a_work_directory(minilm_dir, tmp_path, capsys):
    """Also `bert-jax export` without --sentence-transformers: the imported model's head (mean
    pooling, Normalize) makes it a sentence-transformers export, not a BertForPreTraining that
    SentenceTransformer would read as plain mean pooling (norms 5.6)."""
    reference = sentence_transformers_encode(minilm_dir, TEXTS)
    workdir, _, sentence = import_sentence_transformers(minilm_dir, tmp_path / "workdir")
    assert sentence == read_sentence_config(minilm_dir)[0] and sentence.normalize
    run_config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    assert sentence_config(run_config) == sentence
    ours = SentenceEncoder.load(workdir)(TEXTS).sentence_vectors
    assert_close(ours, reference, "all-MiniLM-L6-v2 from its work directory")
    exported, step = export_workdir(workdir, tmp_path / "export")
    assert step == 0
    again = sentence_transformers_encode(exported, TEXTS)
    assert_close(again, reference, "all-MiniLM-L6-v2 through a work directory and exported")
    np.testing.assert_allclose(np.linalg.norm(again, axis=1), 1, atol=1e-6)
    assert main(["export", "--workdir", str(workdir), "--output", str(tmp_path / "plain")]) == 0
    assert "as a sentence-transformers model" in capsys.readouterr().out
    plain = sentence_transformers_encode(tmp_path / "plain", TEXTS)
    assert_close(plain, reference, "all-MiniLM-L6-v2 imported, then bert-jax export")
    np.testing.assert_allclose(np.linalg.norm(plain, axis=1), 1, atol=1e-6)


def test_command_line_import_encode_and_export(tiny, tmp_path, capsys):
    """`bert-jax import` keeps the model's head (its pooling, normalization and length) in the run
    config, `encode` from the work directory uses it, `export --sentence-transformers` writes it
    back, and refuses a directory that is not empty."""
    config, params, _, vocab = tiny
    sentence = SentenceConfig(pooling="max", normalize=True, max_seq_length=48)
    source = export_sentence_transformers(params, config, vocab, True, sentence, tmp_path / "source")
    reference = sentence_transformers_encode(source, TEXTS)
    assert main(["import", "--from", str(source), "--output", str(tmp_path / "workdir")]) == 0
    text = tmp_path / "texts.txt"
    text.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    assert main(["encode", "--model", str(tmp_path / "workdir"), "--input", str(text),
                 "--output", str(tmp_path / "vectors.npy")]) == 0
    assert f"wrote {len(TEXTS)} max-pooled unit-length sentence vectors" in capsys.readouterr().out
    assert_close(np.load(tmp_path / "vectors.npy"), reference, "bert-jax encode --model WORKDIR")
    assert main(["export", "--workdir", str(tmp_path / "workdir"), "--output", str(tmp_path / "again"),
                 "--sentence-transformers"]) == 0
    assert read_sentence_config(tmp_path / "again")[0] == sentence
    assert_close(sentence_transformers_encode(tmp_path / "again", TEXTS), reference, "import, export")
    assert main(["export", "--workdir", str(tmp_path / "workdir"), "--output", str(tmp_path / "again"),
                 "--sentence-transformers"]) == 2
    assert "holds an earlier export" in capsys.readouterr().err


def test_command_line_encode_uses_the_models_head(tiny, tmp_path, capsys):
    """`bert-jax encode` pools and normalizes as a sentence-transformers model does, unless
    --pooling or --[no-]normalize say otherwise."""
    config, params, tokenizer, vocab = tiny
    sentence = SentenceConfig(pooling="max", normalize=True, max_seq_length=48)
    source = export_sentence_transformers(params, config, vocab, True, sentence, tmp_path / "source")
    text = tmp_path / "texts.txt"
    text.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    runs = {"default": ([], "max-pooled unit-length"),
            "overridden": (["--pooling", "mean", "--no-normalize"], "mean-pooled")}
    for name, (flags, described) in runs.items():
        assert main(["encode", "--model", str(source), "--input", str(text),
                     "--output", str(tmp_path / f"{name}.npy"), *flags]) == 0
        assert f"wrote {len(TEXTS)} {described} sentence vectors" in capsys.readouterr().out
    assert_close(np.load(tmp_path / "default.npy"), sentence_transformers_encode(source, TEXTS),
                 "bert-jax encode, the model's own head")
    assert_close(np.load(tmp_path / "overridden.npy"),
                 SentenceEncoder(params, config, tokenizer)(TEXTS, pooling="mean").sentence_vectors,
                 "--pooling mean --no-normalize")
