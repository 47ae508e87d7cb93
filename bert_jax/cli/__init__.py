"""The `bert-jax` command: one subcommand per stage, each a thin wrapper over a Python function.

  bert-jax demo          corpus -> vocab -> shards -> pretraining -> export -> fill-mask, on a CPU
  bert-jax vocab         train a WordPiece or SentencePiece vocab (input_pipeline.vocabulary)
  bert-jax create-data   text -> masked, NSP-paired shards    (input_pipeline.creation.create_pretraining_data)
  bert-jax pretrain      train from a config in a work dir     (bert_jax.train)
  bert-jax export        checkpoint -> Hugging Face directory  (bert_jax.convert.hf_export)
  bert-jax import        Hugging Face / Google BERT -> work dir (bert_jax.checkpoint_import)
  bert-jax fill-mask     top-k predictions for [MASK]s         (bert_jax.inference.fill_mask)
  bert-jax nsp           P(sentence B follows sentence A)      (bert_jax.inference.next_sentence)
  bert-jax encode        sentence and token vectors            (bert_jax.inference.encode)
  bert-jax export-serving  StableHLO / SavedModel for serving  (bert_jax.inference.serving_export)

Heavy libraries are imported inside the subcommands, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from bert_jax.errors import RunStopped


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    # Orbax and JAX log every checkpoint detail and backend probe at INFO through absl.
    for name in ("absl", "jax._src.xla_bridge", "orbax"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _demo(args: argparse.Namespace) -> None:
    from bert_jax.demos.pretraining import DemoOptions, run_demo

    overrides = list(args.set)
    if args.steps is not None:
        overrides.append(f"train.num_steps={args.steps}")
    run_demo(DemoOptions(workdir=args.workdir, vocab_file=args.vocab, vocab_size=args.vocab_size,
                         dupe_factor=args.dupe_factor, config=args.config, overrides=tuple(overrides)))


def _vocab(args: argparse.Namespace) -> None:
    from input_pipeline.text.report import InputReport
    from input_pipeline.text.sources import expand_inputs, iter_lines
    from input_pipeline.tokenizers.loading import load_tokenizer
    from input_pipeline.vocabulary.wordpiece import held_out_statistics, named_initial_alphabet, train_vocab_from_files

    # Bad input is skipped and counted (or, with --strict, an error), as in create-data.
    report = InputReport(strict=args.strict, max_line_chars=args.max_line_chars)
    if args.tokenizer == "wordpiece":
        tokens = train_vocab_from_files(args.input, args.output, args.vocab_size,
                                        do_lower_case=not args.cased, min_frequency=args.min_frequency,
                                        initial_alphabet=named_initial_alphabet(args.initial_alphabet),
                                        text_field=args.text_field, report=report)
        report.log(logging.getLogger("bert_jax.cli"))
        print(f"wrote {len(tokens)} tokens to {args.output}")
        if len(tokens) < args.vocab_size:
            logging.getLogger("bert_jax.cli").warning(
                "the vocab holds %d tokens, not the %d of --vocab-size: this text has no more pairs "
                "of pieces seen at least --min-frequency=%d times. Give more text for a larger "
                "vocab.", len(tokens), args.vocab_size, args.min_frequency)
    else:
        from input_pipeline.vocabulary.sentencepiece import train_sentencepiece_from_files

        tokenizer = train_sentencepiece_from_files(
            args.input, args.output, args.vocab_size, text_field=args.text_field,
            model_type=args.tokenizer, lowercase=not args.cased,
            character_coverage=args.character_coverage, byte_fallback=args.byte_fallback,
            report=report)
        report.log(logging.getLogger("bert_jax.cli"))
        print(f"wrote a {args.tokenizer} SentencePiece model of {tokenizer.vocab_size} pieces to {args.output}")
    if args.held_out:
        tokenizer = load_tokenizer(args.output, do_lower_case=not args.cased)
        held_out = InputReport(strict=args.strict, max_line_chars=args.max_line_chars)
        lines = (line for source in expand_inputs(args.held_out, held_out)
                 for line in iter_lines(source, text_field=args.text_field, report=held_out))
        print(json.dumps(held_out_statistics(tokenizer, lines), indent=2))
        held_out.log(logging.getLogger("bert_jax.cli"))


def _create_data(args: argparse.Namespace) -> None:
    from input_pipeline.creation.create_pretraining_data import CreationConfig, create_pretraining_data

    config = CreationConfig(
        max_seq_length=args.max_seq_length, max_predictions_per_seq=args.max_predictions_per_seq,
        masked_lm_prob=args.masked_lm_prob, short_seq_prob=args.short_seq_prob,
        dupe_factor=args.dupe_factor, whole_word_masking=args.whole_word_masking,
        do_lower_case=not args.cased, max_input_chars_per_word=args.max_input_chars_per_word,
        seed=args.seed, num_shards=args.num_shards, text_format=args.format,
        text_field=args.text_field, block_chars=int(args.block_mb * 1_000_000), masking=args.masking,
        max_line_chars=args.max_line_chars, strict=args.strict)
    if args.runner == "beam":
        from input_pipeline.creation.beam_pipeline import run_beam_pipeline
        manifest = run_beam_pipeline(args.input, args.vocab, args.output_dir, config,
                                     pipeline_args=args.beam_args, overwrite=args.overwrite)
    else:
        manifest = create_pretraining_data(args.input, args.vocab, args.output_dir, config,
                                           num_workers=args.workers, overwrite=args.overwrite)
    print(f"wrote {manifest['num_instances']} instances from {manifest['num_documents']} documents "
          f"into {len(manifest['shards'])} shards in {args.output_dir}")
    print(json.dumps(manifest["statistics"], indent=2))


def _pretrain(args: argparse.Namespace) -> None:
    from bert_jax.config.files import load_config
    from bert_jax.parallel import distributed
    from bert_jax.training.loop import train_and_evaluate

    distributed.initialize(args.distributed, args.coordinator_address, args.num_processes,
                           args.process_id, heartbeat_timeout=args.heartbeat_timeout)

    results = train_and_evaluate(load_config(args.config, args.set), args.workdir)
    print(json.dumps(results, indent=2))


def _export(args: argparse.Namespace) -> None:
    from bert_jax.config.validation import bert_config
    from bert_jax.convert.hf_export import export_to_huggingface
    from bert_jax.state.trained_params import load_trained_params

    params, config, step = load_trained_params(args.workdir, args.step)
    out = export_to_huggingface(params, bert_config(config), args.vocab or config.data.vocab_file,
                                config.data.do_lower_case, args.output)
    print(f"exported step {step} of {args.workdir} to {out}")


def _import(args: argparse.Namespace) -> None:
    from bert_jax.convert.workdir_import import import_to_workdir

    out, imported = import_to_workdir(args.source, args.output, args.config, args.set, args.vocab,
                                      seed=args.seed)
    # The log line above names the source and the freshly initialized heads.
    print(f"wrote the work directory {out} (a checkpoint at step 0, {imported.config.num_layers} "
          f"layers of {imported.config.hidden_size}): `bert-jax export --workdir {out}` and "
          f"`fill-mask` read it; `--set train.init_from={out}` continues pretraining from it")


def _texts_from(args: argparse.Namespace, what: str) -> list[str]:
    """The positional texts, then the lines of --file (blank lines skipped); at least one."""
    texts = list(args.text)
    if args.file:
        with open(args.file, encoding="utf-8") as f:
            texts += [line.rstrip("\r\n") for line in f if line.strip()]
    if not texts:
        raise ValueError(f"no {what}: pass them as arguments or with --file.")
    return texts


def _fill_mask(args: argparse.Namespace) -> None:
    from bert_jax.inference.fill_mask import FillMask, format_predictions

    texts = _texts_from(args, "texts with [MASK]")
    fill_mask = FillMask.load(args.model, args.step, args.dtype, max_batch_size=args.batch_size)
    for text, per_mask in zip(texts, fill_mask(texts, top_k=args.top_k)):
        if args.format == "json":
            print(json.dumps({"text": text, "predictions": per_mask}, ensure_ascii=False))
        else:
            print(format_predictions(text, per_mask))


def _nsp(args: argparse.Namespace) -> None:
    from bert_jax.inference.next_sentence import NextSentencePredictor, format_results, read_pairs

    pairs = [tuple(pair) for pair in args.pair] + (read_pairs(args.file) if args.file else [])
    if not pairs:
        raise ValueError("no sentence pairs: pass --pair A B (repeatable) or --file pairs.tsv.")
    predictor = NextSentencePredictor.load(args.model, args.step, args.dtype, max_batch_size=args.batch_size)
    print(format_results(pairs, predictor(pairs, truncate=args.truncate), args.format))


def _encode(args: argparse.Namespace) -> None:
    from bert_jax.inference.encode import SentenceEncoder, padded_mask_path, read_sentences, save_encodings

    texts = read_sentences(args.input)
    if not texts:
        raise ValueError(f"{args.input} has no lines to encode.")
    encoder = SentenceEncoder.load(args.model, args.step, args.dtype, max_batch_size=args.batch_size)
    with_tokens = args.tokens is not None or args.padded_tokens is not None
    encodings = encoder(texts, pooling=args.pooling, with_tokens=with_tokens, truncate=args.truncate)
    save_encodings(encodings, args.output, args.tokens, args.padded_tokens)
    written = [args.tokens, args.padded_tokens and f"{args.padded_tokens} (padded; mask "
               f"{padded_mask_path(args.padded_tokens)})"]
    print(f"wrote {encodings.sentence_vectors.shape[0]} {args.pooling}-pooled sentence vectors of "
          f"size {encodings.sentence_vectors.shape[1]} to {args.output}"
          + (f" and {len(encodings.token_ids)} token vectors to {' and '.join(w for w in written if w)}"
             if with_tokens else ""))


def _export_serving(args: argparse.Namespace) -> None:
    from bert_jax.inference.loading import MLM_HEAD, NSP_HEAD, POOLER, load_for_inference, require_heads
    from bert_jax.inference.serving_export import export_serving

    loaded = load_for_inference(args.model, args.step, args.dtype)
    if args.mlm_logits:
        require_heads(loaded, [MLM_HEAD], "--mlm-logits")
    # The outputs whose parameters the source holds (a BertModel export has no NSP head).
    lacks = {prefix for prefix in (POOLER, NSP_HEAD) if any(m.startswith(prefix) for m in loaded.missing)}
    outputs = ["sequence_output"]
    if POOLER not in lacks:
        outputs.append("pooled_output")
        if NSP_HEAD not in lacks:
            outputs.append("nsp_logits")
    if args.mlm_logits:
        outputs.append("mlm_logits")
    platforms = [p.strip() for p in args.platforms.split(",") if p.strip()]
    out = export_serving(loaded.params, loaded.config, loaded.tokenizer, args.output, outputs=outputs,
                         platforms=platforms, saved_model=args.saved_model)
    print(f"exported {args.model} for serving ({', '.join(outputs)}; {', '.join(platforms)}) to {out}")


def _add_model_arguments(p: argparse.ArgumentParser, batch_size: bool = True) -> None:
    """--model (with --workdir as its old name), --step, --dtype and --batch-size."""
    p.add_argument("--model", "--workdir", dest="model", required=True,
                   help="a pretraining work directory, a Hugging Face BERT directory (e.g. from "
                   "bert-jax export) or a Google BERT checkpoint")
    p.add_argument("--step", type=int, help="checkpoint step of a work directory (default: latest)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                   help="compute dtype (default: the model's)")
    if batch_size:
        p.add_argument("--batch-size", type=int, default=32,
                       help="largest batch; inputs are padded to power-of-two batch sizes and "
                       "lengths, so each shape compiles once")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bert-jax", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run every stage end to end on this machine's CPU",
                       description="Builds a corpus from the Python standard library's docstrings, "
                       "trains a vocab, makes shards, pretrains a tiny BERT, exports it to the "
                       "Hugging Face format and shows fill-mask predictions. Run it again to resume.")
    p.add_argument("--workdir", default="workdir/demo", help="where everything is written")
    p.add_argument("--vocab", help="use this vocab.txt instead of training one")
    p.add_argument("--vocab-size", type=int, default=8000, help="size of the trained vocab")
    p.add_argument("--dupe-factor", type=int, default=5, help="masking passes over the corpus")
    p.add_argument("--steps", type=int, help="training steps (default: the config's)")
    p.add_argument("--config", default="cpu_demo", help="config name in configs/ or path")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set train.global_batch_size=16")
    p.set_defaults(run=_demo)

    p = sub.add_parser("vocab", help="train a WordPiece vocab.txt or a SentencePiece model",
                       description="Streams the text (files, globs, directories, .gz, .jsonl, "
                       "tfds:NAME[:SPLIT]); special tokens come first: [PAD] [UNK] [CLS] [SEP] [MASK]. "
                       "Korean must be --cased (lower-casing strips accents through NFD, which "
                       "splits every Hangul syllable into jamo); add --initial-alphabet "
                       "ksx1001-hangul so that rare syllables are never [UNK].")
    p.add_argument("--input", nargs="+", required=True, help="text inputs, as for create-data")
    p.add_argument("--output", required=True, help="vocab.txt (wordpiece) or NAME.model (unigram/bpe)")
    p.add_argument("--tokenizer", choices=("wordpiece", "unigram", "bpe"), default="wordpiece")
    p.add_argument("--vocab-size", type=int, default=30522)
    p.add_argument("--min-frequency", type=int, default=2, help="minimum count of a merged pair")
    p.add_argument("--cased", action="store_true", help="keep case and accents (required for Korean)")
    p.add_argument("--initial-alphabet", default="",
                   help="characters always in the vocab, e.g. ksx1001-hangul,ascii (wordpiece)")
    p.add_argument("--character-coverage", type=float, default=0.9995, help="(unigram/bpe)")
    p.add_argument("--byte-fallback", action="store_true", help="unknown characters as bytes (unigram/bpe)")
    p.add_argument("--text-field", default="text", help="the text field of JSONL records / TFDS examples")
    p.add_argument("--held-out", nargs="+", help="text to report [UNK] rate and tokens per word on")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first bad input (missing path, binary or empty file, invalid "
                   "UTF-8, bad JSON Lines record, overlong line, ...), naming file and line; by "
                   "default it is skipped and counted in the input report (logged)")
    p.add_argument("--max-line-chars", type=int, default=1_000_000,
                   help="longer lines are skipped (and counted)")
    p.set_defaults(run=_vocab)

    p = sub.add_parser("create-data", help="make masked, NSP-paired TFRecord shards from text",
                       description="Text files (plain or .gz), globs, directories, JSONL or TFDS "
                       "datasets to TFRecord shards with Google's features, in parallel and in "
                       "bounded memory. A blank line separates documents.")
    p.add_argument("--input", nargs="+", required=True,
                   help="files, globs or directories (.txt, .gz, .jsonl) or tfds:NAME[:SPLIT]")
    p.add_argument("--format", choices=("lines", "paragraphs"), default="lines",
                   help="lines: one sentence per line (the original); paragraphs: one paragraph "
                   "per line, split into sentences (English and Korean)")
    p.add_argument("--text-field", default="text", help="the text field of JSONL records / TFDS examples")
    p.add_argument("--vocab", required=True, help="WordPiece vocab.txt or SentencePiece .model")
    p.add_argument("--output-dir", required=True,
                   help="a new or empty directory (or an earlier run's output, with --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier create-data run's output in --output-dir (only the "
                   "files its manifest.json lists, once the new set is complete)")
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--max-predictions-per-seq", type=int, default=20)
    p.add_argument("--masked-lm-prob", type=float, default=0.15)
    p.add_argument("--short-seq-prob", type=float, default=0.1)
    p.add_argument("--dupe-factor", type=int, default=10, help="passes over the corpus")
    p.add_argument("--masking", choices=("static", "dynamic"), default="static",
                   help="static: masked here, once per pass; dynamic: stored unmasked and masked "
                   "afresh every epoch by the trainer (set data.dynamic_masking=True)")
    p.add_argument("--whole-word-masking", action="store_true")
    p.add_argument("--cased", action="store_true", help="the vocab is cased")
    p.add_argument("--max-input-chars-per-word", type=int, default=100,
                   help="longer words become [UNK] (100 as transformers, 200 as Google's original)")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--num-shards", type=int, default=4)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--block-mb", type=float, default=1.0,
                   help="text per block: a worker's memory and the pool random next segments "
                   "are drawn from")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first bad input (missing path, binary or empty file, invalid "
                   "UTF-8, overlong line, control characters, empty or one-sentence document), "
                   "naming file and line; by default it is skipped and counted in "
                   "OUTPUT_DIR/input_report.json")
    p.add_argument("--max-line-chars", type=int, default=1_000_000,
                   help="longer lines are skipped (and counted): never sentences, and a memory hazard")
    p.add_argument("--runner", choices=("local", "beam"), default="local",
                   help="beam: run as an Apache Beam pipeline (pip install 'bert-jax[beam]')")
    p.add_argument("--beam-args", nargs=argparse.REMAINDER, default=[],
                   help="the rest of the line goes to Beam, e.g. --runner=DataflowRunner ...")
    p.set_defaults(run=_create_data)

    p = sub.add_parser("pretrain", help="pretrain from a config, resuming from the work dir")
    p.add_argument("--config", required=True, help="config name in configs/ (e.g. bert_base) or path")
    p.add_argument("--workdir", required=True, help="checkpoints, config.json and TensorBoard logs")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set data.train_files=shards/")
    p.add_argument("--distributed", choices=("none", "auto", "explicit"), default="none",
                   help="multi-process run: auto detects a TPU pod or SLURM job; explicit takes "
                   "the three flags below (or BERT_JAX_* variables)")
    p.add_argument("--coordinator-address", help="host:port of process 0 (explicit)")
    p.add_argument("--num-processes", type=int, help="number of processes (explicit)")
    p.add_argument("--process-id", type=int, help="this process's index (explicit)")
    p.add_argument("--heartbeat-timeout", type=int, default=100,
                   help="seconds without a heartbeat after which a process counts as dead and the "
                        "others stop with an error, instead of waiting for it forever")
    p.set_defaults(run=_pretrain)

    p = sub.add_parser("export", help="export a checkpoint to the Hugging Face BERT format")
    p.add_argument("--workdir", required=True, help="work directory of a pretraining run")
    p.add_argument("--output", required=True, help="directory to write")
    p.add_argument("--step", type=int, help="checkpoint step (default: latest)")
    p.add_argument("--vocab", help="vocab.txt (default: the run's data.vocab_file)")
    p.set_defaults(run=_export)

    p = sub.add_parser("import", help="Hugging Face BERT or Google checkpoint -> bert-jax work dir",
                       description="Converts a Hugging Face BERT directory (config.json with "
                       "model.safetensors or pytorch_model.bin; BertModel, BertForMaskedLM, "
                       "BertForPreTraining, ...) or a Google TensorFlow BERT checkpoint "
                       "(bert_config.json + bert_model.ckpt) into a work directory: config.json, "
                       "the vocab, and a checkpoint at step 0 that fill-mask, export and "
                       "train.init_from read. Heads the source lacks are freshly initialized, "
                       "and listed.")
    p.add_argument("--from", dest="source", required=True, metavar="SRC",
                   help="Hugging Face directory, Google checkpoint directory or prefix, or a "
                   "bert-jax work directory")
    p.add_argument("--output", required=True, help="work directory to create (must not exist)")
    p.add_argument("--config", help="run config to start from (default: the defaults); the model "
                   "fields are the checkpoint's")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set model.scan_layers=False")
    p.add_argument("--vocab", help="vocab.txt or SentencePiece .model (default: the source's own)")
    p.add_argument("--seed", type=int, default=0, help="seed of the freshly initialized heads")
    p.set_defaults(run=_import)

    p = sub.add_parser("fill-mask", help="predict the tokens behind [MASK]",
                       description="The top-k tokens for every [MASK] in each text, with score, "
                       "token id, token string and the filled-in sequence, as transformers' "
                       "fill-mask pipeline gives them.")
    p.add_argument("text", nargs="*", help="texts containing [MASK]")
    _add_model_arguments(p)
    p.add_argument("--file", help="more texts, one per line")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: readable blocks; json: one JSON object per text")
    p.set_defaults(run=_fill_mask)

    p = sub.add_parser("nsp", help="P(sentence B follows sentence A), from the NSP head",
                       description="The probability that sentence B is the sentence after A "
                       "(the pretraining next-sentence head; index 0 of its logits is 'is next').")
    _add_model_arguments(p)
    p.add_argument("--pair", nargs=2, action="append", default=[], metavar=("A", "B"),
                   help="a sentence pair (repeatable)")
    p.add_argument("--file", help="pairs from a TSV file: 'sentence A<TAB>sentence B' per line")
    p.add_argument("--format", choices=("jsonl", "table"), default="jsonl",
                   help="jsonl: {sentence_a, sentence_b, is_next} per line; table: aligned columns")
    p.add_argument("--truncate", action="store_true",
                   help="cut pairs longer than the model takes (longest sentence first) "
                   "instead of stopping with an error")
    p.set_defaults(run=_nsp)

    p = sub.add_parser("encode", help="sentence vectors (.npy) and token vectors (.npz or .npy)",
                       description="Encodes each line of a text file. Sentence vectors: a .npy "
                       "[lines, hidden] (row i is line i+1). Token vectors (--tokens): a .npz "
                       "with token_vectors [all tokens, hidden], token_ids and offsets [lines+1]; "
                       "line i+1's tokens, [CLS] and [SEP] included, are rows "
                       "offsets[i]:offsets[i+1]. Padded token vectors (--padded-tokens x.npy): "
                       "[lines, longest line's tokens, hidden], zeros past each line's end, and "
                       "x.mask.npy [lines, longest], 1 on real tokens.")
    _add_model_arguments(p)
    p.add_argument("--input", required=True, help="UTF-8 text file, one sentence per line")
    p.add_argument("--output", required=True, help="sentence vectors, .npy")
    p.add_argument("--tokens", help="also write the token vectors to this .npz")
    p.add_argument("--padded-tokens", metavar="PATH.npy",
                   help="also write the token vectors padded to one array, .npy, with its mask "
                   "as PATH.mask.npy")
    p.add_argument("--pooling", choices=("mean", "max", "cls", "pooler"), default="mean",
                   help="over real tokens only: mean, elementwise max, the [CLS] vector, or "
                   "BERT's tanh pooler output")
    p.add_argument("--truncate", action="store_true",
                   help="cut lines longer than the model takes instead of stopping with an error")
    p.set_defaults(run=_encode)

    p = sub.add_parser("export-serving", help="export the encoder as StableHLO (and a TF SavedModel)",
                       description="Writes model.stablehlo (jax.export, symbolic batch and "
                       "length, weights inside: loads with jax alone), serving.json (inputs, "
                       "outputs, input format, tokenizer) and the vocab; --saved-model adds a "
                       "TensorFlow SavedModel through jax2tf.")
    _add_model_arguments(p, batch_size=False)
    p.add_argument("--output", required=True, help="directory to write")
    p.add_argument("--mlm-logits", action="store_true",
                   help="also output the masked-LM logits [batch, length, vocab]")
    p.add_argument("--platforms", default="cpu,cuda",
                   help="comma-separated platforms the artifact runs on (cpu, cuda, rocm, tpu)")
    p.add_argument("--saved-model", action="store_true",
                   help="also write a TensorFlow SavedModel (needs tensorflow)")
    p.set_defaults(run=_export_serving)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging()
    try:
        args.run(args)
    except (ValueError, OSError) as e:
        # Configuration, input and disk errors (a missing file, a full disk) are the user's to
        # fix: a message, not a stack trace.
        if os.environ.get("BERT_JAX_TRACEBACK"):
            raise
        print(f"bert-jax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RunStopped as e:
        # The run stopped on purpose, with its last good checkpoint in place.
        if os.environ.get("BERT_JAX_TRACEBACK"):
            raise
        print(f"bert-jax {args.command}: stopped: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
