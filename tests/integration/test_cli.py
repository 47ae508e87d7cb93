"""The `bert-jax` command: every subcommand answers `--help` without importing JAX, TensorFlow or
torch (nor does `import bert_jax`), user errors are one clear line, and the demo runs end to end
(then resumes without redoing anything)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import TINY_MODEL_OVERRIDES

SUBCOMMANDS = ["demo", "vocab", "create-data", "pretrain", "finetune", "glue", "sbert-train", "export", "import", "fill-mask", "nsp",
               "encode", "predict", "export-serving", "plot"]


def _bert_jax() -> str:
    path = shutil.which("bert-jax")
    assert path, "the bert-jax console script is not installed (pip install -e .)"
    return path


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_every_subcommand_has_help(subcommand):
    result = subprocess.run([_bert_jax(), subcommand, "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"usage: bert-jax {subcommand}" in result.stdout


# What `import bert_jax` and `--help` must not load: seconds each (numpy and SentencePiece a tenth).
HEAVY = ("jax", "jaxlib", "flax", "orbax", "tensorflow", "torch", "transformers", "numpy", "sentencepiece")


def heavy_modules_loaded_by(code: str) -> list[str]:
    """The HEAVY packages in `sys.modules` after `code` runs in a fresh interpreter."""
    script = (f"import json, sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\n"
              f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("code", [
    "import bert_jax",
    "import bert_jax; dir(bert_jax); bert_jax.__all__",
    "from bert_jax.cli import main; main(['--help'])",
    *(f"from bert_jax.cli import main; main([{subcommand!r}, '--help'])" for subcommand in SUBCOMMANDS),
])
def test_import_bert_jax_and_help_load_no_heavy_library(code):
    assert heavy_modules_loaded_by(code) == []


def test_a_public_name_loads_its_library_on_first_use():
    """The check above can fail: the same probe sees JAX once a name that needs it is used."""
    assert "jax" in heavy_modules_loaded_by("import bert_jax; bert_jax.FillMask")


def test_top_level_help_lists_the_stages():
    result = subprocess.run([_bert_jax(), "--help"], capture_output=True, text=True)
    for subcommand in SUBCOMMANDS:
        assert subcommand in result.stdout


def test_user_errors_are_one_clear_line(tmp_path):
    result = subprocess.run([_bert_jax(), "create-data", "--input", str(tmp_path / "missing.txt"),
                             "--vocab", str(tmp_path / "vocab.txt"), "--output-dir", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "missing.txt" in result.stderr.strip().splitlines()[-1]
    text = tmp_path / "text.txt"
    text.write_text("One sentence.\n\nAnother document.\n")
    result = subprocess.run([_bert_jax(), "create-data", "--input", str(text), "--vocab",
                             str(tmp_path / "vocab.txt"), "--output-dir", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "vocab.txt" in result.stderr.strip().splitlines()[-1]


def test_demo_runs_end_to_end_and_resumes(tmp_path):
    workdir = tmp_path / "demo"
    command = [_bert_jax(), "demo", "--workdir", str(workdir), "--steps", "30", "--dupe-factor", "1",
               "--vocab-size", "2000"]
    for item in TINY_MODEL_OVERRIDES:
        command += ["--set", item]
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    out = first.stdout
    assert "Exported step 30" in out
    assert out.count("'score': ") >= 25  # Five held-out sentences, top-5 each.
    assert "Held-out masked-LM accuracy" in out and "always the most frequent" in out
    assert "replaced tokens" in out
    for path in ["corpus/train.txt", "corpus/held_out.txt", "vocab.txt", "data/train/manifest.json",
                 "checkpoints/30", "export/model.safetensors", "export/vocab.txt", "export/tokenizer.json",
                 "config.json"]:
        assert (workdir / path).exists(), path
    # The export's model card: the shards' manifest and the run's last metrics.
    card = (workdir / "export" / "README.md").read_text(encoding="utf-8")
    manifest = json.loads((workdir / "data" / "train" / "manifest.json").read_text())
    assert f"| training instances | {manifest['num_instances']:,} |" in card
    assert "Last eval metrics (step 30, `metrics.jsonl`)" in card

    # Run again with the fine-tuning demo: the pretraining stages are read back, not redone, and
    # the classification task is fine-tuned from each start (a few steps: the table, not the
    # scores, is under test here; docs/benchmarks.md has a full run's).
    again = subprocess.run(command + ["--task", "classification", "--finetune-set", "train.num_epochs=0.1",
                                      "--finetune-set", "task.max_seq_length=32"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "corpus exists" in again.stderr and "vocab exists" in again.stderr
    assert "shards exist" in again.stderr and "training is complete" in again.stderr
    scores = json.loads((workdir / "classification" / "scores.json").read_text())
    assert list(scores) == ["majority", "random", "demo", "minilm"]
    data = workdir / "classification" / "data"
    train_labels = [json.loads(line)["label"] for line in (data / "train.jsonl").read_text().splitlines()]
    test_rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    majority = max(set(train_labels), key=train_labels.count)
    assert scores["majority"] == sum(row["label"] == majority for row in test_rows) / len(test_rows)
    # Held out by module: no test module, and no test text, is in the training set.
    train_rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    assert not {r["module"] for r in train_rows} & {r["module"] for r in test_rows}
    assert not {r["text"] for r in train_rows} & {r["text"] for r in test_rows}
    assert {r["label"] for r in train_rows} == {r["label"] for r in test_rows} == set(
        (data / "labels.txt").read_text().split())
    for start in ("random", "demo", "minilm"):
        results = json.loads((workdir / "classification" / start / "results.json").read_text())
        assert results["final"]["accuracy"] == scores[start] and results["train_examples"] == len(train_rows)
    assert "(c) fine-tuned from the demo's pretraining" in again.stdout and "pretraining " in again.stdout

    # And the Sentence-BERT demo (without MiniLM here: the classification run above covers it).
    retrieval = subprocess.run(command + ["--task", "retrieval", "--no-minilm", "--finetune-set", "train.num_steps=5",
                                          "--finetune-set", "data.max_seq_length=32"], capture_output=True, text=True)
    assert retrieval.returncode == 0, retrieval.stderr[-3000:]
    scores = json.loads((workdir / "retrieval" / "scores.json").read_text())
    assert list(scores) == ["bm25", "demo before", "demo after"]
    assert all(0 <= m["recall@1"] <= m["mrr@10"] <= 1 for m in scores.values())
    assert scores["demo before"] != scores["demo after"]  # trained: the vectors moved
    assert json.loads((workdir / "retrieval" / "demo" / "config.json").read_text())["train"]["num_steps"] == 5
    assert "Find a function's documentation from its summary" in retrieval.stdout
    assert re.search(r"pretrain: 30 steps in \dm\d\ds \([\d.]+ steps/s; 480 sequences", first.stderr)


def test_vocab_and_create_data_options(tmp_path):
    """A SentencePiece vocab and paragraph input, two workers, dynamic masking, from the CLI."""
    from input_pipeline.text.stdlib_corpus import write_stdlib_corpus

    lines_text, held_out = tmp_path / "lines.txt", tmp_path / "held_out.txt"
    write_stdlib_corpus(lines_text, held_out, max_bytes=150_000)
    # One paragraph per line, as --format paragraphs expects.
    paragraphs = tmp_path / "paragraphs.txt"
    paragraphs.write_text("\n\n".join(" ".join(d.splitlines()) for d in lines_text.read_text().split("\n\n")
                                      if d.strip()) + "\n")
    result = subprocess.run([_bert_jax(), "vocab", "--input", str(lines_text), "--output",
                             str(tmp_path / "sp.model"), "--tokenizer", "unigram", "--vocab-size", "1000",
                             "--held-out", str(held_out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert '"unk_rate"' in result.stdout
    assert re.search(r"vocab: reading for SentencePiece: [\d.]+kB in \dm\d\ds \([\d.]+[kMG]?B/s\) -> ",
                     result.stderr), result.stderr
    # Not a terminal: progress as a log line every BERT_JAX_PROGRESS_SECONDS, then a summary.
    result = subprocess.run([_bert_jax(), "create-data", "--input", str(paragraphs), "--format", "paragraphs",
                             "--vocab", str(tmp_path / "sp.model"), "--output-dir", str(tmp_path / "out"),
                             "--workers", "2", "--masking", "dynamic", "--dupe-factor", "1",
                             "--block-mb", "0.05", "--max-seq-length", "64"],
                            capture_output=True, text=True, env=os.environ | {"BERT_JAX_PROGRESS_SECONDS": "0"})
    assert result.returncode == 0, result.stderr
    lines = re.findall(r"create-data: [\d.]+kB of [\d.]+kB \(\d+%\), [\d.]+[kMG]?B/s, [\d,]+ instances "
                       r"\([\d,.]+/s\)(?:, ETA \dm\d\ds)?", result.stderr)
    assert len(lines) >= 2, result.stderr
    assert re.search(r"create-data: [\d.]+kB in \dm\d\ds \([\d.]+[kMG]?B/s; [\d,]+ instances, [\d,.]+ "
                     r"instances/s\) -> [\d,]+ instances from [\d,]+ documents into 4 shards in ", result.stderr)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["masking"] == "dynamic" and manifest["num_blocks"] >= 2
    assert manifest["vocab_file"] == "sp.model" and manifest["num_sentences"] > manifest["num_documents"]
