"""`bert-jax export-serving`: the encoder as one StableHLO artifact (and a TensorFlow
SavedModel) for serving (`bert_jax.export_serving`)."""

from __future__ import annotations

import argparse

from bert_jax.cli.model_arguments import add_model_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export-serving", help="export the encoder as StableHLO (and a TF SavedModel)",
        description="Writes model.stablehlo (jax.export, symbolic batch and "
        "length, weights inside: loads with jax alone), serving.json (inputs, "
        "outputs, input format, tokenizer) and the vocab; --saved-model adds a "
        "TensorFlow SavedModel through jax2tf.")
    add_model_arguments(p, batch_size=False)
    p.add_argument("--output", required=True,
                   help="a new or empty directory, or an earlier export's (with --overwrite); a "
                   "directory holding files bert-jax did not write is refused")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier export in --output: only the files it wrote (listed in "
                   "its .bert-jax-export.json); anything added there since is left as it is")
    p.add_argument("--mlm-logits", action="store_true",
                   help="also output the masked-LM logits [batch, length, vocab]")
    p.add_argument("--platforms", default="cpu,cuda",
                   help="comma-separated platforms the artifact runs on (cpu, cuda, rocm, tpu)")
    p.add_argument("--saved-model", action="store_true",
                   help="also write a TensorFlow SavedModel (needs tensorflow)")
    return p


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (JAX and Flax take seconds).
    from bert_jax.convert.export_directory import check_export_directory
    from bert_jax.inference.loading import MLM_HEAD, NSP_HEAD, POOLER, load_for_inference, require_heads
    from bert_jax.inference.serving_export import export_serving

    check_export_directory(args.output, overwrite=args.overwrite)  # before loading the model
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
                         platforms=platforms, saved_model=args.saved_model, overwrite=args.overwrite)
    print(f"exported {args.model} for serving ({', '.join(outputs)}; {', '.join(platforms)}) to {out}")
