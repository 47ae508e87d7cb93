"""`create_pretraining_data` as an Apache Beam pipeline, for corpora that need many machines.

The same blocks, the same `BlockProcessor` and the same order of parts within a shard as the
local version, so both write byte-identical shards for the same inputs and config (tested with
Beam's DirectRunner). Any runner works (Dataflow, Flink, Spark): pass its pipeline options.

Reading and cutting the corpus into blocks is one sequential pass (it only splits lines, at
hundreds of MB/s); tokenizing, pairing, masking and serializing, nearly all of the work, are
spread over the workers. Requires the `beam` extra: `pip install 'bert-jax[beam]'`.

The output directory is handled as by the local runner (`shards.directory.StagedOutput`), on
Cloud Storage too: the workers write into a staging directory inside it, and the launching
process puts the complete set in place once the pipeline has finished.
"""

from __future__ import annotations

import collections
import itertools
import logging
import operator
import os
from collections.abc import Iterable, Sequence

from input_pipeline import remote_files
from input_pipeline.creation.create_pretraining_data import (
    BlockProcessor,
    CreationConfig,
    block_order_key,
    check_enough_documents,
    iter_blocks,
    logger,
    warn_about_statistics,
    write_error,
    write_input_report,
)
from input_pipeline.shards.directory import INPUT_REPORT_NAME, StagedOutput
from input_pipeline.shards.manifest import build_manifest, read_manifest, shard_name, write_manifest
from input_pipeline.shards.tfrecord import write_atomically
from input_pipeline.text.report import InputReport
from input_pipeline.text.sources import expand_inputs
from input_pipeline.tokenizers.loading import load_tokenizer


def _import_beam():
    """Apache Beam, an optional extra: imported only by the Beam runner."""
    try:
        import apache_beam as beam
    except ImportError:
        raise ImportError("the Beam runner needs Apache Beam: pip install 'bert-jax[beam]'") from None
    return beam


def resolve_path(path: str | os.PathLike) -> str:
    """`path` as the workers must see it: a local path made absolute (a worker's working
    directory is not ours), a remote one (`gs://bucket/...`) unchanged, since `abspath` would
    turn it into a local path under the working directory (`/cwd/gs:/bucket/...`)."""
    path = os.fspath(path)
    return path if remote_files.is_remote(path) else os.path.abspath(path)


def run_beam_pipeline(inputs: Sequence[str], vocab_path: str, output_dir: str,
                      config: CreationConfig = CreationConfig(), *, prefix: str = "train",
                      pipeline_args: Sequence[str] = (), overwrite: bool = False) -> dict:
    """Writes the shards, input report and manifest of `create_pretraining_data` with Beam;
    `pipeline_args` are Beam's own flags (e.g. `--runner=DataflowRunner --project=...`). Returns
    the manifest.

    Inputs, vocab and output may be remote (`gs://bucket/...`, read and written through
    tf.io.gfile), as they must be for workers on other machines; local paths are made absolute.
    The output directory is checked, written and replaced as by the local runner
    (`shards.directory.StagedOutput`): the workers write into a staging directory inside it, and
    this process puts the complete set in place once the pipeline has finished. A failed
    pipeline raises its first error (a full disk: the OSError naming the shard) and leaves the
    output as it was.
    """
    # Reads better whole: the steps below are closures over the resolved paths, the config and
    # the staging directory that Beam pickles to its workers, and the pipeline reads top to bottom.
    beam = _import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions  # Beam: an optional extra

    # Missing inputs are counted here; the rest of the report by the reading step and the
    # workers, and the parts are joined before it is written.
    paths_report = config.input_report()
    sources = expand_inputs(inputs, paths_report)
    vocab_path = resolve_path(vocab_path)
    output_dir = resolve_path(output_dir)
    BlockProcessor(vocab_path, config)  # A bad vocab fails here, with its own message.
    output = StagedOutput(output_dir, overwrite=overwrite)
    staging = output.prepare()

    class ProcessBlock(beam.DoFn):
        def setup(self):
            self.processor = BlockProcessor(vocab_path, config)

        def process(self, element):
            block_index, block = element
            stats, records = self.processor(block_index, block.documents, block.origins,
                                            block.starts, block.ends)
            for shard, group in itertools.groupby(records, key=operator.itemgetter(0)):
                part = [record for _, record in group]
                key = block_order_key(config.seed, shard, block_index)
                yield beam.pvalue.TaggedOutput("parts", (shard, (key, b"".join(part), len(part))))
            yield beam.pvalue.TaggedOutput("stats", stats)

    def write_shard(element) -> tuple[int, int]:
        shard, parts = element
        parts = sorted(parts)
        name = shard_name(prefix, shard, config.num_shards)
        try:
            write_atomically(os.path.join(staging, name), (part for _, part, _ in parts))
        except OSError as e:
            raise write_error(f"shard {os.path.join(output_dir, name)}", e) from e
        return shard, sum(count for _, _, count in parts)

    def read_blocks(_):
        report = config.input_report()
        yield from enumerate(iter_blocks(sources, config, report))
        yield beam.pvalue.TaggedOutput("report", report)

    def write_manifest_from(shard_counts: Iterable[tuple[int, int]], stats: collections.Counter,
                            read_report: InputReport) -> None:
        report = config.input_report()
        for part in (paths_report, read_report):
            report.merge(part)
        check_enough_documents(stats, report)
        counts = dict(shard_counts)
        tokenizer = load_tokenizer(vocab_path, do_lower_case=config.do_lower_case)
        manifest = build_manifest(config, vocab_path, tokenizer.vocab_size, sources,
                                  [counts.get(s, 0) for s in range(config.num_shards)], stats, prefix)
        report.add_block_counts(stats)
        for what, write in (("the input report", lambda: write_input_report(staging, report)),
                            ("the manifest", lambda: write_manifest(staging, manifest))):
            try:
                write()
            except OSError as e:
                raise write_error(f"{what} into {staging}", e) from e
        report.log(logger, os.path.join(output_dir, INPUT_REPORT_NAME))

    beam_errors = logging.getLogger("apache_beam.runners.common")
    beam_errors.addFilter(_drop_our_errors)
    try:
        try:
            with beam.Pipeline(options=PipelineOptions(list(pipeline_args))) as pipeline:
                read = (pipeline
                        | "Start" >> beam.Create([None])
                        | "ReadBlocks" >> beam.FlatMap(read_blocks).with_outputs("report",
                                                                                 main="blocks"))
                blocks = read.blocks | "Spread" >> beam.Reshuffle()
                outputs = blocks | "Process" >> beam.ParDo(ProcessBlock()).with_outputs("parts",
                                                                                       "stats")
                stats = outputs.stats | "SumStats" >> beam.CombineGlobally(
                    lambda counters: sum(counters, collections.Counter()))
                shard_counts = (outputs.parts
                                | "ByShard" >> beam.GroupByKey()
                                | "WriteShards" >> beam.Map(write_shard)
                                | "AllShards" >> beam.combiners.ToList())
                _ = shard_counts | "WriteManifest" >> beam.Map(
                    write_manifest_from, beam.pvalue.AsSingleton(stats),
                    beam.pvalue.AsSingleton(read.report))
        except Exception as error:  # noqa: BLE001 -- runners wrap a step's error in any type
            raise _first_cause(error) from None
        output.commit()
    finally:
        beam_errors.removeFilter(_drop_our_errors)
        output.discard()
    manifest = read_manifest(output_dir)
    warn_about_statistics(manifest)
    return manifest


def _first_cause(error: Exception) -> Exception:
    """The error a failed pipeline started from, if it is ours to explain (an OSError such as a
    full disk, or a ValueError about the input), rather than the runner's wrapping of it; else
    `error` itself. Beam's in-process runners chain the original; remote ones keep only its text."""
    seen = error
    while seen is not None:
        if isinstance(seen, (OSError, ValueError)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return error


def _drop_our_errors(record: logging.LogRecord) -> bool:
    """False for Beam's log record of an error of ours (an OSError or ValueError a step raised):
    `run_beam_pipeline` raises it once, with its message; the traceback Beam logs for every
    failing bundle (each worker of a full disk) would bury it."""
    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(_first_cause(error), (OSError, ValueError)) if error else True
