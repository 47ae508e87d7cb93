"""`bert-jax sbert-train` end to end on tiny files and a tiny random BERT exported as a
sentence-transformers directory (max pooling): for NLI (SNLI's TSV), STS (JSON Lines, scores 0-5,
from the NLI run's work directory as SBERT does) and triplets (CSV), the run starts from the
source's weights and pooling, pads each batch to
one of two length buckets and compiles at most one train step per bucket, evaluates during
training and keeps the best evaluation's parameters; `SentenceEncoder` and `bert-jax encode` read
the trained work directory with its pooling, and its sentence-transformers export encodes as
`SentenceEncoder` does (sentence-transformers 6.2.0 within 1e-5). A run killed with SIGKILL and
rerun ends with bitwise the parameters and metrics of an uninterrupted run."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bert_jax.cli import main
from bert_jax.convert.sentence_transformers import export_sentence_transformers
from bert_jax.inference.encode import SentenceEncoder
from bert_jax.model import SentenceConfig
from bert_jax.state.best import load_best_params
from bert_jax.state.checkpointer import Checkpointer
from tests.support.sentence_transformers_models import TEXTS, assert_close, sentence_transformers_encode

REPO = Path(__file__).resolve().parents[2]
WORDS = ("the", "cat", "dog", "man", "woman", "child", "plays", "runs", "sleeps", "eats", "reads", "a", "in",
         "on", "under", "red", "blue", "green", "big", "small", "house", "park", "street", "river", "music")
BUCKETS = (16, 32)
TIMEOUT_S = 240


def _sentence(rng: np.random.Generator, long: bool) -> str:
    return " ".join(rng.choice(WORDS, rng.integers(16, 26) if long else rng.integers(2, 9))) + "."


@pytest.fixture(scope="module")
def files(tiny, tmp_path_factory) -> dict[str, Path]:
    """The source model (max pooling) and a training and evaluation file per objective: 24
    examples, 4 of them long (past the 16-token bucket), so that batches come in both buckets."""
    config, params, _, vocab = tiny
    root = tmp_path_factory.mktemp("sbert")
    source = export_sentence_transformers(params, config, vocab, True, SentenceConfig(pooling="max"),
                                          root / "source")
    rng = np.random.default_rng(0)
    out = {"source": source}
    for split, n in (("train", 24), ("eval", 12)):
        pairs = [(_sentence(rng, i % 6 == 5), _sentence(rng, False)) for i in range(n)]
        labels = ("entailment", "neutral", "contradiction", "-")
        rows = ["gold_label\tsentence1\tsentence2\n"] + [f"{labels[i % (4 if split == 'train' else 3)]}\t{a}\t{b}\n"
                                                        for i, (a, b) in enumerate(pairs)]
        (root / f"nli_{split}.txt").write_text("".join(rows))
        (root / f"sts_{split}.jsonl").write_text("".join(
            json.dumps({"s1": a, "s2": b, "score": round(float(rng.uniform(0, 5)), 2)}) + "\n" for a, b in pairs))
        (root / f"pairs_{split}.csv").write_text("anchor,positive,negative\n" + "".join(
            f"{a},{a.rstrip('.')} {b},{_sentence(rng, False)}\n" for a, b in pairs))
        out |= {f"nli_{split}": root / f"nli_{split}.txt", f"sts_{split}": root / f"sts_{split}.jsonl",
                f"pairs_{split}": root / f"pairs_{split}.csv"}
    return out


def _command(objective: str, files: dict, workdir: Path, *extra: str, init_from: Path | None = None) -> list[str]:
    args = ["sbert-train", "--objective", objective, "--init-from", str(init_from or files["source"]),
            "--train", str(files[f"{objective}_train"]), "--eval", str(files[f"{objective}_eval"]),
            "--workdir", str(workdir)]
    if objective == "nli":
        args += ["--format", "snli"]
    if objective == "sts":
        args += ["--fields", "sentence1=s1,sentence2=s2"]
    for item in ("train.global_batch_size=4", "sbert.eval_batch_size=8", "sbert.epochs=2", "train.eval_every=3",
                 "train.checkpoint_every=3", "train.log_every=1", "data.max_seq_length=32",
                 f"sbert.length_buckets={BUCKETS}", "optimizer.learning_rate=1e-3", *extra):
        args += ["--set", item]
    return args


def _rows(workdir: Path, prefix: str) -> list[dict]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["prefix"] == prefix]


def test_each_objective_trains_evaluates_keeps_the_best_and_serves_its_pooling(files, tmp_path, caplog):
    texts = TEXTS[:4]
    before = SentenceEncoder.load(files["source"])(texts).sentence_vectors
    main_metric = {"nli": "accuracy", "sts": "spearman_cosine", "pairs": "mrr@10"}
    for objective in ("nli", "sts", "pairs"):
        workdir = tmp_path / objective
        caplog.clear()
        # SBERT's recipe: STS from the NLI run, which hands on its weights and its pooling.
        init_from = tmp_path / "nli" if objective == "sts" else None
        with caplog.at_level(logging.INFO, logger="bert_jax"):
            assert main(_command(objective, files, workdir, init_from=init_from)) == 0
        log = caplog.text
        # 18 labelled NLI pairs (6 without a gold label left out), 24 STS pairs and triplets: 5 or 6 steps an epoch.
        steps = {"nli": 10, "sts": 12, "pairs": 12}[objective]
        assert [r["step"] for r in _rows(workdir, "train")] == list(range(1, steps + 1)), objective
        if objective == "nli":
            assert "6 pairs without a gold label left out" in log
        compiled = [line for line in log.splitlines() if "compiled the train step" in line]
        assert len(compiled) == len(BUCKETS), compiled  # both buckets met, each compiled once
        evaluations = _rows(workdir, "eval")
        assert [r["step"] for r in evaluations] == [s for s in range(3, steps + 1, 3)] + ([steps] if steps % 3 else [])
        metric = main_metric[objective]
        best = max(evaluations, key=lambda r: (r[metric], -r["step"]))
        _, _, best_step, best_metrics = load_best_params(workdir)
        assert (best_step, best_metrics[metric]) == (best["step"], best[metric]), objective
        if objective == "pairs":
            assert {"recall@1", "recall@10", "ndcg@10"} <= set(best_metrics)
        saved = json.loads((workdir / "config.json").read_text())
        assert saved["sentence"]["pooling"] == "max" and saved["sbert"]["objective"] == objective
        # The trained model, with the source's pooling; its export encodes the same.
        encoder = SentenceEncoder.load(workdir)
        assert encoder.sentence.pooling == "max"
        after = encoder(texts).sentence_vectors
        assert np.abs(after - before).max() > 1e-3, objective
        assert main(["export", "--workdir", str(workdir), "--output", str(tmp_path / f"{objective}_st"),
                     "--sentence-transformers"]) == 0
        assert_close(sentence_transformers_encode(tmp_path / f"{objective}_st", texts), after, objective)
    text = tmp_path / "texts.txt"
    text.write_text("\n".join(texts) + "\n")
    assert main(["encode", "--model", str(tmp_path / "pairs"), "--input", str(text),
                 "--output", str(tmp_path / "vectors.npy")]) == 0
    assert_close(np.load(tmp_path / "vectors.npy"), after, "bert-jax encode --model SBERT_WORKDIR")
    assert main(["fill-mask", "--model", str(tmp_path / "nli"), "[MASK] dog."]) == 2  # no MLM head


def _env() -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop("XLA_FLAGS", None)
    return env


def _params(workdir: Path) -> dict:
    checkpointer = Checkpointer(workdir, async_save=False)
    try:
        return checkpointer.restore_params_as_saved(checkpointer.latest_step())
    finally:
        checkpointer.close()


def test_a_killed_run_resumes_to_bitwise_the_same_parameters(files, tmp_path):
    """Triplets with dropout on: killed with SIGKILL after its checkpoint of step 3, rerun, it
    reports each later step's metrics and ends with the parameters of an uninterrupted run."""
    extra = ("model.hidden_dropout_rate=0.1", "model.attention_dropout_rate=0.1")
    assert main(_command("pairs", files, tmp_path / "reference", *extra)) == 0
    workdir = tmp_path / "killed"
    command = [sys.executable, "-m", "bert_jax.cli", *_command("pairs", files, workdir, *extra)]
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(command, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = TIMEOUT_S
        while not ((workdir / "metrics.jsonl").exists() and any(r["step"] >= 4 for r in _rows(workdir, "train"))):
            assert process.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            deadline -= 0.05
            assert deadline > 0, "timed out waiting for step 4"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL  # killed, not finished
    checkpoints = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert checkpoints and max(checkpoints) < 12
    assert main(_command("pairs", files, workdir, *extra)) == 0
    reference, resumed = _rows(tmp_path / "reference", "train"), _rows(workdir, "train")
    timing = {"steps_per_second", "step_seconds", "sequences_per_second", "tokens_per_second",
              "tflops_per_second", "mfu"}
    numbers = {r["step"]: {k: v for k, v in r.items() if k not in timing} for r in resumed}
    assert numbers == {r["step"]: {k: v for k, v in r.items() if k not in timing} for r in reference}
    for (path, ours), theirs in zip(_flat(_params(workdir)), [v for _, v in _flat(_params(tmp_path / "reference"))],
                                    strict=True):
        np.testing.assert_array_equal(ours, theirs, err_msg=path)


def _flat(tree) -> list:
    import jax

    return [(jax.tree_util.keystr(path), np.asarray(leaf)) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]
