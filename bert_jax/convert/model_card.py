"""The model card (`README.md`) of an export: YAML front matter that the Hugging Face Hub reads
(`library_name`, `pipeline_tag`, `tags`), the model's shape, how it was trained (the data
manifests' statistics and the final metrics of its work directory, where it has them) and how to
load it with `transformers` or `sentence-transformers`.

Only what the export and its work directory record is written: a card states no number it
cannot show where it came from.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from bert_jax.model import BertConfig
from bert_jax.model.sentence import SentenceConfig
from input_pipeline import remote_files
from input_pipeline.shards.manifest import read_manifest

# A model kind (`parameter_table.HEADS`) -> the Hub's pipeline tag for it.
PIPELINE_TAGS = {"pretraining": "fill-mask", "encoder": "feature-extraction",
                 "sequence_classification": "text-classification",
                 "token_classification": "token-classification",
                 "question_answering": "question-answering"}

# The manifest's counts and statistics a card shows, with their names there.
_MANIFEST_COUNTS = (("num_instances", "training instances"), ("num_documents", "documents"),
                    ("num_sentences", "sentences"), ("input_characters", "characters of text"))
_MANIFEST_STATISTICS = (("mean_tokens", "mean tokens per instance"),
                        ("mean_predictions", "mean masked predictions per instance"),
                        ("random_next_fraction", "fraction of random next sentences"),
                        ("unk_fraction", "fraction of [UNK] tokens"))


@dataclasses.dataclass(frozen=True)
class TrainingRecord:
    """What a work directory says of how the exported checkpoint was made: the manifests of its
    shard directories (directory -> manifest) and the last metrics reported at or before the
    step (prefix, e.g. "train" or "eval" -> that row of `metrics.jsonl`)."""
    workdir: str
    step: int
    manifests: dict[str, dict] = dataclasses.field(default_factory=dict)
    metrics: dict[str, dict] = dataclasses.field(default_factory=dict)


def read_training_record(workdir: str | os.PathLike, run_config: Any, step: int) -> TrainingRecord:
    """The `TrainingRecord` of checkpoint `step` of `workdir`, whose run config is `run_config`:
    the manifests beside its training shards (`data.train_files`, `data.phase2_train_files`,
    `data.eval_files`) and the rows of its `metrics.jsonl`. Shards without a manifest, or a work
    directory without metrics, give none (a card without those sections)."""
    patterns = []
    for field in ("train_files", "phase2_train_files", "eval_files"):
        value = run_config.data.get(field, "") if "data" in run_config else ""
        patterns += [p for p in str(value or "").split(",") if p]
    manifests = {}
    for pattern in patterns:
        directory = pattern if remote_files.isdir(pattern) else os.path.dirname(pattern)
        manifest = read_manifest(directory) if directory and remote_files.isdir(directory) else None
        if manifest is not None:
            manifests.setdefault(directory, manifest)
    metrics: dict[str, dict] = {}
    path = Path(workdir) / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill: the card is no place to refuse it
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
                prefix = str(row.get("prefix", "train"))
                if row["step"] >= metrics.get(prefix, {}).get("step", -1):
                    metrics[prefix] = row
    return TrainingRecord(os.fspath(workdir), step, manifests, metrics)


def model_card(config: BertConfig, kind: str = "pretraining", architecture: str = "BertForPreTraining", *,
               sentence: SentenceConfig | None = None, labels: tuple[str, ...] = (),
               record: TrainingRecord | None = None) -> str:
    """The README.md of an export of a BERT of `config`: a `transformers` model of `kind`
    (`parameter_table.HEADS`) loaded by the class `architecture` (a classifier's `labels`), or
    with `sentence` a sentence-transformers model with that head; `record` adds how it was
    trained."""
    num_params = parameter_count(config)
    if sentence is not None:
        library, pipeline = "sentence-transformers", "sentence-similarity"
        tags = ["sentence-transformers", "sentence-similarity", "feature-extraction"]
    else:
        library, pipeline = "transformers", PIPELINE_TAGS[kind]
        tags = [pipeline]
    front = ["---", f"library_name: {library}", f"pipeline_tag: {pipeline}", "tags:",
             *(f"- {tag}" for tag in [*tags, "bert", "bert-jax"]), "---", ""]
    title = "A BERT sentence encoder" if sentence is not None else f"A BERT ({kind.replace('_', ' ')})"
    lines = [*front, f"# {title} exported by bert-jax", "",
             "## Model", "",
             "| | |", "|---|---|",
             f"| layers | {config.num_layers} |", f"| hidden size | {config.hidden_size} |",
             f"| attention heads | {config.num_heads} |", f"| intermediate size | {config.intermediate_size} |",
             f"| activation | {config.hidden_act} |", f"| vocabulary | {config.vocab_size} tokens |",
             f"| positions | {config.max_position_embeddings} |",
             f"| parameters (encoder and pooler) | {num_params:,} |"]
    if labels:
        lines.append(f"| labels | {', '.join(f'`{name}`' for name in labels)} |")
    if sentence is not None:
        head = f"{sentence.pooling} pooling" + (", normalized to unit length" if sentence.normalize else "")
        lines += ["", (f"Then {head}: one {config.hidden_size}-dimensional vector per text of at most "
                       f"{sentence.max_length(config.max_position_embeddings)} tokens, compared by "
                       f"{sentence.similarity} similarity.")]
    if record is not None:
        lines += ["", "## Training", "", f"Step {record.step} of the work directory `{record.workdir}`."]
        lines += _data_section(record.manifests) + _metrics_section(record.metrics)
    lines += ["", "## Usage", "", *(_sentence_usage(sentence) if sentence is not None else _usage(kind, architecture))]
    return "\n".join(lines) + "\n"


def parameter_count(config: BertConfig) -> int:
    """Parameters of the encoder and pooler of a BERT of `config` (what `BertModel` holds),
    counted from the shape: embeddings, layers, pooler."""
    hidden, inner = config.hidden_size, config.intermediate_size
    embeddings = (config.vocab_size + config.max_position_embeddings + config.type_vocab_size + 2) * hidden
    layer = 4 * (hidden * hidden + hidden) + 2 * hidden * inner + inner + hidden + 4 * hidden
    return embeddings + config.num_layers * layer + hidden * hidden + hidden


def _data_section(manifests: dict[str, dict]) -> list[str]:
    lines = []
    for directory, manifest in manifests.items():
        lines += ["", (f"Shards `{directory}` (`bert-jax create-data`, {manifest.get('masking', '?')} masking, "
                       f"sequences of {manifest.get('max_seq_length', '?')} tokens):"), "", "| | |", "|---|---|"]
        lines += [f"| {name} | {manifest[key]:,} |" for key, name in _MANIFEST_COUNTS
                  if isinstance(manifest.get(key), int)]
        statistics = manifest.get("statistics", {})
        lines += [f"| {name} | {statistics[key]:.4g} |" for key, name in _MANIFEST_STATISTICS
                  if isinstance(statistics.get(key), (int, float))]
        inputs = manifest.get("inputs") or []
        if inputs:
            shown = ", ".join(f"`{name}`" for name in inputs[:5])
            lines.append(f"| text | {shown}{f' and {len(inputs) - 5} more' if len(inputs) > 5 else ''} |")
    return lines


def _metrics_section(metrics: dict[str, dict]) -> list[str]:
    lines = []
    for prefix, row in sorted(metrics.items()):
        values = {k: v for k, v in row.items() if k not in ("step", "prefix") and isinstance(v, (int, float))}
        lines += ["", f"Last {prefix} metrics (step {row['step']}, `metrics.jsonl`):", "", "| metric | value |",
                  "|---|---|", *(f"| {name} | {value:.6g} |" for name, value in values.items())]
    return lines


def _usage(kind: str, architecture: str) -> list[str]:
    lines = ["```python", f"from transformers import AutoTokenizer, {architecture}", "",
             'tokenizer = AutoTokenizer.from_pretrained("path/to/this/directory")',
             f'model = {architecture}.from_pretrained("path/to/this/directory")',
             'outputs = model(**tokenizer(["A first sentence."], return_tensors="pt"))', "```"]
    if kind == "pretraining":
        lines += ["", "```python", "from transformers import pipeline", "",
                  'fill = pipeline("fill-mask", model="path/to/this/directory")',
                  'print(fill("The capital of France is [MASK]."))', "```"]
    return lines


def _sentence_usage(sentence: SentenceConfig) -> list[str]:
    lines = ["```python", "from sentence_transformers import SentenceTransformer", "",
             'model = SentenceTransformer("path/to/this/directory")',
             'embeddings = model.encode(["A first sentence.", "Another one."])',
             "print(model.similarity(embeddings, embeddings))", "```"]
    if sentence.prompts:
        default = (f"`{sentence.default_prompt_name}` unless another is named" if sentence.default_prompt_name
                   else "none unless named, e.g. `encode(texts, prompt_name=...)`")
        lines += ["", f"Prompts, put before the text ({default}):",
                  *(f"- `{name}`: {text!r}" for name, text in sentence.prompts.items())]
    return lines
