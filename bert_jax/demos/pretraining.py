"""The end-to-end demo: raw text to a pretrained, exported BERT on a laptop CPU in a few minutes.

1. corpus: the Python standard library's docstrings in BERT's input format (train and held out);
2. vocab: a WordPiece vocabulary trained on the training text (or a given vocab.txt);
3. shards: masked, NSP-paired TFRecords for training and for the held-out text;
4. pretraining of a BERT-Tiny-sized model, with orbax checkpoints in the work directory;
5. export of the final checkpoint to the Hugging Face format;
6. fill-mask predictions on held-out sentences, and held-out MLM accuracy next to the accuracy of
   always predicting the most frequent token.

Every stage whose output already exists is skipped, so running the demo again resumes where it
stopped (training from its latest checkpoint).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import random
import shutil
from pathlib import Path

import numpy as np

from bert_jax.config.files import load_config
from bert_jax.config.validation import bert_config
from bert_jax.convert.hf_export import export_to_huggingface
from bert_jax.convert.model_card import read_training_record
from bert_jax.inference.fill_mask import FillMask, format_predictions
from bert_jax.state.trained_params import load_trained_params
from bert_jax.state.workdir_lock import locked
from bert_jax.training.loop import train_and_evaluate
from input_pipeline.creation.create_pretraining_data import CreationConfig, create_pretraining_data
from input_pipeline.reading.reader import ReaderConfig, numpy_batches
from input_pipeline.shards.manifest import file_sha256, read_manifest
from input_pipeline.text.stdlib_corpus import write_stdlib_corpus
from input_pipeline.tokenizers.wordpiece import load_vocab
from input_pipeline.vocabulary.wordpiece import train_vocab_from_files

logger = logging.getLogger("bert_jax")


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    workdir: str = "workdir/demo"
    vocab_file: str | None = None      # Use this vocab instead of training one.
    vocab_size: int = 8000
    dupe_factor: int = 5
    num_fill_mask_examples: int = 5
    config: str = "cpu_demo"
    overrides: tuple[str, ...] = ()    # `section.field=value` changes to the config.


def run_demo(options: DemoOptions = DemoOptions()) -> dict:
    """Runs every stage; returns the held-out metrics and the paths of what it made."""
    workdir = Path(options.workdir)
    # Every stage writes into the work directory, not only the pretraining: one demo at a time.
    with locked(workdir):
        return _run_stages(options, workdir)


def _run_stages(options: DemoOptions, workdir: Path) -> dict:
    train_text, held_out_text = _build_corpus(workdir / "corpus")
    vocab_file = _build_vocab(workdir, train_text, options)
    config = load_config(options.config, options.overrides)
    train_dir = _build_shards(train_text, vocab_file, workdir / "data" / "train", config,
                              options.dupe_factor, seed=12345)
    held_out_dir = _build_shards(held_out_text, vocab_file, workdir / "data" / "held_out", config,
                                 dupe_factor=1, seed=54321)

    config.data.train_files = str(train_dir)
    config.data.eval_files = str(held_out_dir)
    config.data.vocab_file = str(vocab_file.resolve())
    config.model.vocab_size = len(load_vocab(vocab_file))
    logger.info("stage 4/6: pretraining (%d steps) in %s", config.train.num_steps, workdir)
    results = train_and_evaluate(config, workdir)

    logger.info("stage 5/6: exporting to the Hugging Face format")
    params, trained_config, step = load_trained_params(workdir)
    # The demo's own export: a rerun replaces it (only the files an export wrote).
    export_dir = export_to_huggingface(params, bert_config(trained_config), vocab_file,
                                       trained_config.data.do_lower_case, workdir / "export",
                                       overwrite=True,
                                       record=read_training_record(workdir, trained_config, step))
    print(f"\nExported step {step} to {export_dir}: load it with "
          f"transformers.BertForPreTraining.from_pretrained({str(export_dir)!r})")

    logger.info("stage 6/6: fill-mask on held-out sentences")
    fill_mask = FillMask.from_workdir(workdir)
    print("\nFill-mask on held-out sentences (the masked word in brackets):")
    for text, answer in _fill_mask_examples(held_out_text, fill_mask.tokenizer, options.num_fill_mask_examples):
        print(f"\n[{answer}]  " + format_predictions(text, fill_mask(text)[0]))

    baseline = most_frequent_token_accuracy(train_dir, held_out_dir, config)
    print(f"\nHeld-out masked-LM accuracy over {int(results['eval_examples'])} sequences of "
          "modules never seen in training:")
    print(f"  {'':34} {'all predictions':>16} {'replaced tokens':>16}")
    rows = [(f"this model (step {step})", results["eval_mlm_accuracy"],
             results["eval_mlm_replaced_accuracy"]),
            (f"always the most frequent, {baseline['token']!r}", baseline["accuracy"],
             baseline["replaced_accuracy"])]
    for name, accuracy, replaced_accuracy in rows:
        print(f"  {name:34} {accuracy:>16.4f} {replaced_accuracy:>16.4f}")
    print("  (Replaced tokens are the 90% of predictions whose input was [MASK] or a random token:\n"
          "   only the context can predict them. The other 10% can be copied from the input.)")
    print(f"  next-sentence accuracy: {results['eval_nsp_accuracy']:.4f} (chance: 0.5)")
    return results | {"baseline_accuracy": baseline["accuracy"],
                      "baseline_replaced_accuracy": baseline["replaced_accuracy"],
                      "export_dir": str(export_dir)}


def _build_corpus(corpus_dir: Path) -> tuple[Path, Path]:

    train, held_out = corpus_dir / "train.txt", corpus_dir / "held_out.txt"
    if train.is_file() and held_out.is_file():
        logger.info("stage 1/6: corpus exists in %s", corpus_dir)
    else:
        corpus_dir.mkdir(parents=True, exist_ok=True)
        stats = write_stdlib_corpus(train, held_out)
        logger.info("stage 1/6: wrote the standard library's docstrings to %s: %s", corpus_dir, stats)
    return train, held_out


def _build_vocab(workdir: Path, train_text: Path, options: DemoOptions) -> Path:

    vocab_file = workdir / "vocab.txt"
    if options.vocab_file:
        if Path(options.vocab_file).resolve() != vocab_file.resolve():
            shutil.copyfile(options.vocab_file, vocab_file)
        logger.info("stage 2/6: using the given vocab %s", options.vocab_file)
    elif vocab_file.is_file():
        logger.info("stage 2/6: vocab exists: %s", vocab_file)
    else:
        tokens = train_vocab_from_files([str(train_text)], str(vocab_file), options.vocab_size)
        logger.info("stage 2/6: trained a %d-token WordPiece vocab: %s", len(tokens), vocab_file)
    return vocab_file


def _build_shards(text: Path, vocab_file: Path, output_dir: Path, config, dupe_factor: int,
                  seed: int) -> Path:

    creation = CreationConfig(max_seq_length=config.data.max_seq_length,
                              max_predictions_per_seq=config.data.max_predictions_per_seq,
                              dupe_factor=dupe_factor, do_lower_case=config.data.do_lower_case,
                              seed=seed, num_shards=4)
    manifest = read_manifest(output_dir)
    if manifest and manifest["config"] == dataclasses.asdict(creation) \
            and manifest["vocab_sha256"] == file_sha256(vocab_file):
        logger.info("stage 3/6: shards exist in %s (%d instances)", output_dir, manifest["num_instances"])
    else:
        # The demo's own shards of other settings, if any: replaced (create-data refuses others).
        manifest = create_pretraining_data([text], vocab_file, output_dir, creation, overwrite=True)
        logger.info("stage 3/6: wrote %d instances to %s (random-next fraction %.3f)",
                    manifest["num_instances"], output_dir, manifest["statistics"]["random_next_fraction"])
    return output_dir


def _fill_mask_examples(held_out_text: Path, tokenizer, count: int) -> list[tuple[str, str]]:
    """Held-out sentences with one whole word (a single vocab token of 3+ letters) masked."""
    sentences = [s for s in held_out_text.read_text(encoding="utf-8").splitlines()
                 if 8 <= len(s.split()) <= 25]
    rng = random.Random(0)
    rng.shuffle(sentences)
    examples = []
    for sentence in sentences:
        words = sentence.split()
        candidates = [i for i, w in enumerate(words)
                      if w.isalpha() and len(w) >= 3 and tokenizer.tokenize(w) == [w.lower()]]
        if candidates:
            i = candidates[len(candidates) // 2]
            examples.append((" ".join(words[:i] + ["[MASK]"] + words[i + 1:]), words[i]))
        if len(examples) == count:
            break
    return examples


def most_frequent_token_accuracy(train_dir: Path, held_out_dir: Path, config) -> dict:
    """The held-out accuracy of always predicting the token most often masked in training, over
    all predictions and over those whose input token was replaced."""

    def label_counts(shard_dir):
        counts, replaced_counts = collections.Counter(), collections.Counter()
        reader = ReaderConfig((str(shard_dir),), 1024, config.data.max_seq_length,
                              config.data.max_predictions_per_seq, repeat=False)
        for batch in numpy_batches(reader):
            real = batch["masked_lm_weights"] > 0
            inputs = np.take_along_axis(batch["input_ids"], batch["masked_lm_positions"], axis=1)
            counts.update(batch["masked_lm_ids"][real].tolist())
            replaced_counts.update(batch["masked_lm_ids"][real & (inputs != batch["masked_lm_ids"])].tolist())
        return counts, replaced_counts

    most_frequent, _ = label_counts(train_dir)[0].most_common(1)[0]
    held_out, held_out_replaced = label_counts(held_out_dir)
    vocab = {i: t for t, i in load_vocab(config.data.vocab_file).items()}
    return {"token": vocab[most_frequent],
            "accuracy": held_out[most_frequent] / sum(held_out.values()),
            "replaced_accuracy": held_out_replaced[most_frequent] / sum(held_out_replaced.values())}
