"""`bert-jax glue` on a tiny GLUE-shaped directory the test writes (CoLA's header-less TSVs,
STS-B's scores, MNLI's matched and mismatched dev sets, in the download's columns), from the tiny
random BERT: each task fine-tuned in its own work directory, the table papers print, and the
GLUE average of the tasks' best evaluations as `tasks.metrics.glue_score` defines it. MNLI's
mismatched file is a copy of the matched one here, so that scoring the kept parameters on it
afterwards must give the accuracy the run kept them for."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from bert_jax.cli import main
from bert_jax.tasks.metrics import glue_score
from tests.support import finetuning_files

WORDS = finetuning_files.WORDS
MNLI_COLUMNS = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1")
STSB_COLUMNS = ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
                "sentence2", "score")


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_glue(root: Path) -> None:
    """CoLA, STS-B and MNLI as GLUE's download lays them out, 21 training and 11 dev rows each."""
    rng = random.Random(0)
    for name in ("CoLA", "STS-B", "MNLI"):
        (root / name).mkdir(parents=True)
    for split, n in (("train", 21), ("dev", 11)):
        cola = [f"gj04\t{int('good' in s)}\t\t{s}" for s in (_text(rng, rng.randint(3, 7)) for _ in range(n))]
        (root / "CoLA" / f"{split}.tsv").write_text("\n".join(cola) + "\n")
        stsb = ["\t".join(STSB_COLUMNS)] + [
            f"{i}\tmain-captions\tMSRvid\t2012test\t{i}\tnone\tnone\t{_text(rng, 4)}\t{_text(rng, 4)}\t"
            f"{rng.uniform(0, 5):.3f}" for i in range(n)]
        (root / "STS-B" / f"{split}.tsv").write_text("\n".join(stsb) + "\n")
        dev_labels = ("label2", "label3", "label4", "label5") if split == "dev" else ()
        mnli = ["\t".join((*MNLI_COLUMNS, *dev_labels, "gold_label"))]
        for i in range(n):
            a, b = _text(rng, 5), _text(rng, 4)
            label = rng.choice(("entailment", "neutral", "contradiction"))
            mnli.append("\t".join((str(i), "1", f"{i}e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)",
                                   a, b, label, *([label] * len(dev_labels)), label)))
        name = "dev_matched" if split == "dev" else "train"
        (root / "MNLI" / f"{name}.tsv").write_text("\n".join(mnli) + "\n")
    shutil.copy(root / "MNLI" / "dev_matched.tsv", root / "MNLI" / "dev_mismatched.tsv")


def test_glue_fine_tunes_every_task_found_and_prints_the_table(tmp_path, capsys):
    finetuning_files.write_tiny_model(tmp_path)
    write_glue(tmp_path / "glue")
    common = ["--data-dir", str(tmp_path / "glue"), "--init-from", str(tmp_path / "model"),
              "--workdir", str(tmp_path / "runs"), "--set", "train.global_batch_size=8",
              "--set", "optimizer.learning_rate=1e-3", "--set", "task.max_seq_length=24"]
    assert main(["glue", *common, "--tasks", "QNLI"]) == 2
    assert "has no train.tsv and dev file for ['QNLI']" in capsys.readouterr().err

    assert main(["glue", *common]) == 0
    printed = capsys.readouterr().out.splitlines()
    summary = json.loads((tmp_path / "runs" / "glue_results.json").read_text())
    assert sorted(summary["tasks"]) == ["glue/cola", "glue/mnli", "glue/mnli_mismatched", "glue/stsb"]
    best = {name: json.loads((tmp_path / "runs" / directory / "results.json").read_text())["best"]
            for name, directory in (("glue/cola", "CoLA"), ("glue/stsb", "STS-B"), ("glue/mnli", "MNLI"))}
    for name, metrics in best.items():
        assert summary["tasks"][name] == metrics
    assert summary["tasks"]["glue/mnli_mismatched"] == {"accuracy": best["glue/mnli"]["accuracy"]}
    by_hand = (best["glue/cola"]["matthews_correlation"] + best["glue/stsb"]["score"] + best["glue/mnli"]["accuracy"]) / 3
    assert summary["glue_score"] == pytest.approx(by_hand, abs=1e-12)
    assert summary["glue_score"] == glue_score(summary["tasks"], ["glue/cola", "glue/stsb", "glue/mnli"])
    header, values = printed[-2].split(), printed[-1].split()
    assert header == ["CoLA", "STS-B", "MNLI-m/mm", "GLUE"]
    stsb = best["glue/stsb"]
    assert values[1] == f"{100 * stsb['pearson']:.1f}/{100 * stsb['spearman']:.1f}"
    assert values[3] == f"{100 * summary['glue_score']:.1f}"
