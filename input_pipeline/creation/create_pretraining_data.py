"""Raw text to masked, NSP-paired TFRecord shards, in parallel and in bounded memory.

The corpus is read once, in order, and cut into blocks of about `block_chars` characters of
whole documents. Each block is processed on its own (by a worker process here, or by a Beam
worker in `beam_pipeline.py`): its documents are tokenized and paired over `dupe_factor` passes
with Google's algorithm (`instances.py`), the block's instances are shuffled, masked and
serialized with numpy (`masking.mask_batch`, `features.serialize_examples`), and dealt into
`num_shards` parts. Shard `s` is then the concatenation of every block's part `s`, in an order
of blocks drawn from `(seed, s)`, so shards mix the whole corpus.

Memory is bounded by the block, not the corpus: the random "next segment" of an NSP pair comes
from another document of the same block (a few thousand documents; Google's script draws from
the whole corpus in memory), and a document longer than half a block is cut into pieces between
lines, paired as documents of their own. All randomness derives from `(seed, block, pass)`, so
the shards are byte-identical whatever the number of workers.

Bad input (missing paths, binary or empty files, lines that are not UTF-8 or too long, bad JSON
Lines records, control characters, empty and one-sentence documents) is skipped and counted per
file, and the counts are logged and written to `input_report.json` beside the manifest; with
`CreationConfig(strict=True)` the first problem is an error naming file and line.

The output directory is written through a staging directory inside it
(`shards.directory.StagedOutput`): it is refused if it holds anything but an earlier run's
output, which is replaced only with `overwrite`, once the new set is complete. A write that fails
(a full disk) leaves the output directory as it was, and says what it was writing.
"""

from __future__ import annotations

import array
import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing
import os
import random
import threading
import time
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from input_pipeline import remote_files
from input_pipeline.instances.masking import MaskingConfig, mask_batch_with_rng
from input_pipeline.instances.pairs import PairingConfig, create_sentence_pairs
from input_pipeline.progress import Progress
from input_pipeline.shards.directory import INPUT_REPORT_NAME, StagedOutput
from input_pipeline.shards.features import serialize_examples
from input_pipeline.shards.manifest import build_manifest, shard_name, write_manifest
from input_pipeline.shards.tfrecord import frame, write_atomically
from input_pipeline.text.report import DEFAULT_MAX_LINE_CHARS, InputReport, problem_message
from input_pipeline.text.sources import (
    TEXT_FORMATS,
    DocumentPiece,
    document_sentences,
    expand_inputs,
    iter_document_pieces,
    plain_text_bytes,
)
from input_pipeline.tokenizers.loading import load_tokenizer

logger = logging.getLogger(__name__)

MASKING_MODES = ("static", "dynamic")
_CHUNK_ROWS = 4096


@dataclasses.dataclass(frozen=True)
class CreationConfig:
    """The knobs of Google's `create_pretraining_data.py` (with its defaults), and ours."""
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    whole_word_masking: bool = False
    do_lower_case: bool = True
    # Longer words become [UNK]: 100 as in `transformers`, 200 in Google's original.
    max_input_chars_per_word: int = 100
    seed: int = 12345
    num_shards: int = 4
    # "lines": one sentence per line (the original format); "paragraphs": one paragraph per line,
    # split into sentences here. A blank line separates documents in both.
    text_format: str = "lines"
    text_field: str = "text"  # The text of a JSONL record or a TFDS example.
    # About 1 MB of text per block: the unit of work of a worker, its memory (~50 MB of token
    # rows at dupe factor 10), and the pool of documents the random next segments are drawn
    # from (hundreds of Wikipedia articles).
    block_chars: int = 1_000_000
    # "static": masked here, `dupe_factor` times (the original). "dynamic": stored unmasked, once
    # per pass, and masked afresh every epoch by the reader (RoBERTa).
    masking: str = "static"
    # Lines longer than this are skipped and counted: never a sentence, and a memory hazard.
    max_line_chars: int = DEFAULT_MAX_LINE_CHARS
    # False: bad input is skipped and counted in input_report.json. True: the first problem
    # (`input_report.PROBLEMS`) is an error naming file and line.
    strict: bool = False

    def __post_init__(self):
        if self.max_seq_length < 5:
            raise ValueError(f"max_seq_length={self.max_seq_length} must be at least 5 "
                             "([CLS] A [SEP] B [SEP] with one token in each segment).")
        if not 0 < self.masked_lm_prob < 1:
            raise ValueError(f"masked_lm_prob={self.masked_lm_prob} must be in (0, 1).")
        if not 1 <= self.max_predictions_per_seq <= self.max_seq_length:
            raise ValueError(f"max_predictions_per_seq={self.max_predictions_per_seq} must be in "
                             f"[1, max_seq_length={self.max_seq_length}].")
        if self.dupe_factor < 1 or self.num_shards < 1:
            raise ValueError(f"dupe_factor={self.dupe_factor} and num_shards={self.num_shards} "
                             "must be at least 1.")
        if self.text_format not in TEXT_FORMATS:
            raise ValueError(f"text_format={self.text_format!r} must be one of {TEXT_FORMATS}.")
        if self.masking not in MASKING_MODES:
            raise ValueError(f"masking={self.masking!r} must be one of {MASKING_MODES}.")
        if self.block_chars < 1:
            raise ValueError(f"block_chars={self.block_chars} must be positive.")
        if self.max_line_chars < 1:
            raise ValueError(f"max_line_chars={self.max_line_chars} must be positive.")

    def input_report(self) -> InputReport:
        """An empty report that reads by this config's rules (strictness, line limit)."""
        return InputReport(strict=self.strict, max_line_chars=self.max_line_chars)


@dataclasses.dataclass
class Block:
    """Whole documents, or pieces of longer ones, the unit of work of a worker, with where each
    starts and whether it starts and ends its document (`DocumentPiece`)."""
    documents: list[list[str]]
    origins: list[tuple[str, int]]  # (source, line number) of each document's first line.
    starts: list[bool] = dataclasses.field(default_factory=list)
    ends: list[bool] = dataclasses.field(default_factory=list)

    def add(self, source: str, piece: DocumentPiece) -> None:
        self.documents.append(piece.lines)
        self.origins.append((source, piece.line))
        self.starts.append(piece.starts)
        self.ends.append(piece.ends)

    def extend(self, other: Block) -> None:
        for name in ("documents", "origins", "starts", "ends"):
            getattr(self, name).extend(getattr(other, name))


def iter_blocks(sources: Sequence[str], config: CreationConfig,
                report: InputReport | None = None) -> Iterator[Block]:
    """The documents of `sources`, in order, in blocks of about `config.block_chars` characters,
    each of at least two documents.

    A document longer than half a block is cut between lines into pieces of at most half a block
    (`iter_document_pieces`), each paired as a document of its own: a block is then never one
    document, and memory holds at most a block and a half of text whatever the length of the
    documents (a book, or a corpus without blank lines). A short last block (under half the size,
    or of a single document) joins the one before it, so that no block is left with too few
    documents to draw random next segments from. Reading problems are counted in `report` (a
    fresh one of the config's rules if none is given) or raised, if it is strict.
    """
    report = report or config.input_report()
    max_piece = max(1, config.block_chars // 2)
    previous: Block | None = None
    block = Block([], [])
    size = longest = document_size = cut = 0
    for source in sources:
        for piece in iter_document_pieces(source, max_chars=max_piece,
                                          text_format=config.text_format,
                                          text_field=config.text_field, report=report):
            block.add(source, piece)
            piece_size = sum(map(len, piece.lines))
            size += piece_size
            document_size = piece_size + (0 if piece.starts else document_size)
            cut += piece.starts and not piece.ends
            longest = max(longest, document_size)
            if size >= config.block_chars and len(block.documents) >= 2:
                if previous is not None:
                    yield previous
                previous, block, size = block, Block([], []), 0
    if previous is not None and block.documents and (size < config.block_chars // 2
                                                     or len(block.documents) < 2):
        previous.extend(block)
        block = Block([], [])
    if cut:
        logger.warning(
            "%s document(s) hold more than half a block of text (--block-mb %g: %s characters), "
            "the longest %s characters: each was cut between lines into pieces of at most %s "
            "characters, paired as documents of their own (no pair spans a cut, and a piece's "
            "random next segments may come from another piece of the same document). Raise "
            "--block-mb to %g or more to keep every document whole (memory grows with it).",
            f"{cut:,}", config.block_chars / 1e6, f"{config.block_chars:,}", f"{longest:,}",
            f"{max_piece:,}", _round_up(2 * longest / 1e6))
    if previous is not None:
        yield previous
    if block.documents:
        yield block


class BlockProcessor:
    """Turns a block of raw documents into shard parts; built once per worker process."""

    def __init__(self, vocab_path: str, config: CreationConfig):
        self.config = config
        self.tokenizer = load_tokenizer(vocab_path, do_lower_case=config.do_lower_case,
                                        max_input_chars_per_word=config.max_input_chars_per_word)
        self.masking = MaskingConfig.from_tokenizer(
            self.tokenizer, masked_lm_prob=config.masked_lm_prob,
            max_predictions_per_seq=config.max_predictions_per_seq,
            whole_word_masking=config.whole_word_masking)
        if not len(self.masking.random_token_ids):
            raise ValueError(f"{vocab_path} holds only the {self.tokenizer.vocab_size} special "
                             "tokens: every word would be [UNK], and masking has no token to put "
                             "in a word's place. Make a vocab of the corpus with `bert-jax vocab`.")

    def tokenize(self, documents: Iterable[Sequence[str]],
                 origins: Sequence[tuple[str, int]] | None = None,
                 counts: collections.Counter | None = None,
                 starts: Sequence[bool] | None = None, ends: Sequence[bool] | None = None,
                 ) -> tuple[list[list[list[int]]], int]:
        """Documents of token-id sentences (empty ones dropped, as in the original) and the
        number of sentences.

        Given the `origins` of the documents (`Block.origins`), empty and one-sentence documents
        are counted into `counts` under `(kind, source)` keys, or, in strict mode, raise a
        ValueError naming the document's file and first line; pieces of a cut document (`starts`
        or `ends` False) are not documents of their own and never counted so. `counts` also gets
        the documents with tokens (`documents`, a cut one once), the tokens of the sentences and
        the [UNK] among them.
        """
        out, num_sentences = [], 0
        counts = collections.Counter() if counts is None else counts
        unk_id = self.tokenizer.unk_id
        for index, lines in enumerate(documents):
            # A "[SEP]" or "[MASK]" quoted in the corpus is text, not a special token.
            sentences = [ids for s in document_sentences(lines, self.config.text_format)
                         if (ids := self.tokenizer.encode(s, split_special_tokens=True))]
            starts_document = starts is None or starts[index]
            whole = starts_document and (ends is None or ends[index])
            counts["cut_documents"] += starts_document and not whole
            if len(sentences) < 2 and origins is not None and whole:
                kind = "one_sentence_documents" if sentences else "empty_documents"
                source, line = origins[index]
                if self.config.strict:
                    raise ValueError(problem_message(source, kind, line))
                counts[(kind, source)] += 1
            if sentences:
                out.append(sentences)
                num_sentences += len(sentences)
                counts["documents"] += starts_document
                counts["sentence_tokens"] += sum(map(len, sentences))
                counts["unk_tokens"] += sum(ids.count(unk_id) for ids in sentences)
        return out, num_sentences

    def pairs(self, documents: Sequence[Sequence[Sequence[int]]], block_index: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[bool]]:
        """Every pass's NSP pairs of the block as unmasked token rows `[CLS] A [SEP] B [SEP]`,
        flat (row i is `tokens[offsets[i]:offsets[i + 1]]`, 4 bytes a token), with the length of
        `[CLS] A [SEP]` and the random-next label of each row."""
        config = self.config
        pairing = PairingConfig(config.max_seq_length, config.short_seq_prob)
        cls_id, sep_id = self.tokenizer.cls_id, self.tokenizer.sep_id
        tokens, offsets, a_lengths, random_next = array.array("i"), [0], [], []
        for dupe in range(config.dupe_factor):
            # A string seed is hashed with SHA-512 by `random`: stable across runs, platforms and
            # PYTHONHASHSEED.
            rng = random.Random(f"{config.seed}:{block_index}:{dupe}")
            for index in range(len(documents)):
                for pair in create_sentence_pairs(documents, index, pairing, rng):
                    tokens.append(cls_id)
                    tokens.extend(pair.tokens_a)
                    tokens.append(sep_id)
                    tokens.extend(pair.tokens_b)
                    tokens.append(sep_id)
                    offsets.append(len(tokens))
                    a_lengths.append(len(pair.tokens_a) + 2)
                    random_next.append(pair.is_random_next)
        return np.frombuffer(tokens, np.int32), np.array(offsets), np.array(a_lengths), random_next

    def records(self, tokens: np.ndarray, offsets: np.ndarray, rows: np.ndarray, a_lengths: np.ndarray,
                random_next: Sequence[bool], rng: np.random.Generator) -> tuple[list[bytes], int]:
        """Masks (if static) and serializes `rows` (of `pairs`); returns the records and the
        number of masked-LM predictions."""
        config = self.config
        starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
        position = np.arange(config.max_seq_length)
        input_mask = (position < lengths[:, None]).astype(np.int32)
        gather = np.minimum(starts[:, None] + position, len(tokens) - 1)
        input_ids = np.where(input_mask, tokens[gather], 0)
        a_length = a_lengths[rows]
        segment_ids = (input_mask & (position >= a_length[:, None])).astype(np.int32)
        if config.masking == "static":
            masked = mask_batch_with_rng(input_ids, self.masking, rng, input_mask=input_mask)
            features = (masked.input_ids, input_mask, segment_ids, masked.masked_lm_positions,
                        masked.masked_lm_ids, masked.masked_lm_weights)
            num_predictions = int(masked.num_predictions.sum())
        else:
            zeros = np.zeros((len(rows), config.max_predictions_per_seq), np.int32)
            features = (input_ids, input_mask, segment_ids, zeros, zeros, zeros.astype(np.float32))
            num_predictions = 0
        labels = np.array([random_next[row] for row in rows], np.int32)
        return serialize_examples(*features, labels), num_predictions

    def __call__(self, block_index: int, documents: Sequence[Sequence[str]],
                 origins: Sequence[tuple[str, int]] | None = None,
                 starts: Sequence[bool] | None = None, ends: Sequence[bool] | None = None,
                 ) -> tuple[collections.Counter, Iterator[tuple[int, bytes]]]:
        """The block's counts, and its records in TFRecord framing as (shard, record), shard
        after shard. Records are made lazily, a chunk at a time, so memory holds the block's
        token rows but never all its records; the count of predictions is complete once the
        records are consumed. Given `origins`, the counts hold the per-file counts of
        `tokenize` under `(kind, source)` keys (`InputReport.add_block_counts`).

        A block left with a single document with tokens (the others had none) makes no pairs:
        a random next segment must come from another document. It is counted
        (`unpaired_documents`), and the run says so at the end.
        """
        config = self.config
        stats: collections.Counter = collections.Counter(
            blocks=1, characters=sum(len(line) for document in documents for line in document),
            # The progress bar's measure, as input_pipeline.progress counts lines.
            text_bytes=sum(len(line.encode("utf-8")) + 1 for document in documents for line in document))
        tokenized, num_sentences = self.tokenize(documents, origins, stats, starts, ends)
        stats.update(sentences=num_sentences, instances=0, tokens=0, predictions=0,
                     random_next=0)
        if len(tokenized) < 2:
            stats["unpaired_documents"] += len(tokenized)
            return stats, iter(())
        tokens, offsets, a_lengths, random_next = self.pairs(tokenized, block_index)
        num = len(a_lengths)
        stats.update(instances=num, tokens=len(tokens), random_next=sum(random_next))
        rng = np.random.default_rng([config.seed, block_index])
        order = rng.permutation(num)  # The original shuffles all instances before writing.
        # Shard s takes the s-th run of the shuffled instances; the shards that get one instance
        # more rotate with the block, so that shards stay even.
        base, extra = divmod(num, config.num_shards)
        sizes = [base + ((s - block_index) % config.num_shards < extra) for s in range(config.num_shards)]
        shard_at = np.repeat(np.arange(config.num_shards), sizes)

        def records() -> Iterator[tuple[int, bytes]]:
            for start in range(0, num, _CHUNK_ROWS):
                chunk, predictions = self.records(tokens, offsets, order[start:start + _CHUNK_ROWS],
                                                  a_lengths, random_next, rng)
                stats["predictions"] += predictions
                for offset, record in enumerate(chunk):
                    yield int(shard_at[start + offset]), frame(record)

        return stats, records()


def block_order_key(seed: int, shard: int, block_index: int) -> bytes:
    """Sorting a shard's parts by this key gives an order of blocks drawn from (seed, shard),
    without knowing the number of blocks (Beam does not)."""
    return hashlib.blake2b(f"{seed}:{shard}:{block_index}".encode(), digest_size=8).digest()


# One BlockProcessor per worker process, built by the pool's initializer.
_processor: BlockProcessor | None = None
_work_dir: str = ""


def _init_worker(vocab_path: str, config: CreationConfig, work_dir: str, parent: int) -> None:
    global _processor, _work_dir
    # A parent killed with SIGKILL cannot stop its pool: the workers would wait for work forever
    # (a hundred MB each). They leave once it is gone, and so let the next run remove its files.
    threading.Thread(target=_exit_without, args=(parent,), daemon=True).start()
    _processor, _work_dir = BlockProcessor(vocab_path, config), work_dir


def _exit_without(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _process_to_file(block_index: int, block: Block
                     ) -> tuple[int, list[int], list[int], collections.Counter]:
    """Processes a block in a worker and writes its parts, shard after shard, to one file, so
    that only sizes and counts travel back to the parent process."""
    stats, records = _processor(block_index, block.documents, block.origins, block.starts,
                                block.ends)
    sizes, counts = [0] * _processor.config.num_shards, [0] * _processor.config.num_shards
    path = os.path.join(_work_dir, f"block-{block_index:07d}")
    try:
        with open(path, "wb") as f:
            for shard, record in records:
                f.write(record)
                sizes[shard] += len(record)
                counts[shard] += 1
    except OSError as e:
        raise write_error(f"the records of block {block_index} to {path}", e) from e
    return block_index, sizes, counts, stats


def _merge_shard(work_dir: str, path: str, shard: int, seed: int,
                 block_sizes: dict[int, list[int]]) -> None:
    """Writes shard `shard` as the concatenation of every block's part `shard`, into the work
    directory under the base name of `path` (moved to `path` once every shard is complete)."""
    try:
        with open(os.path.join(work_dir, os.path.basename(path)), "wb") as out:
            for block_index in sorted(block_sizes, key=lambda b: block_order_key(seed, shard, b)):
                sizes = block_sizes[block_index]
                with open(os.path.join(work_dir, f"block-{block_index:07d}"), "rb") as f:
                    f.seek(sum(sizes[:shard]))
                    out.write(f.read(sizes[shard]))
    except OSError as e:
        raise write_error(f"shard {path}", e) from e


def write_error(what: str, error: OSError) -> OSError:
    """An OSError (of `error`'s errno) saying what was being written and what to do; the run's
    staging directory is removed when it propagates, and the output is left as it was."""
    return OSError(error.errno, f"writing {what} failed: {error.strerror or error}; the output "
                                "directory is as it was. Free disk space (or write to another "
                                "--output-dir) and run again.")


def write_input_report(output_dir: str | os.PathLike, report: InputReport) -> str:
    """Writes `report` as JSON to `input_report.json` in `output_dir` (atomically); returns its
    path."""
    path = os.path.join(output_dir, INPUT_REPORT_NAME)
    write_atomically(path, [(json.dumps(report.to_json(), indent=2) + "\n").encode()])
    return path


def write_report_and_manifest(staging: str, report: InputReport, manifest: dict) -> None:
    """Writes the input report and the manifest, the last files of a run, into its staging
    directory; a failure says which and what to do (`write_error`)."""
    for what, write in (("the input report", lambda: write_input_report(staging, report)),
                        ("the manifest", lambda: write_manifest(staging, manifest))):
        try:
            write()
        except OSError as e:
            raise write_error(f"{what} into {staging}", e) from e


def create_pretraining_data(inputs: Sequence[str], vocab_path: str | os.PathLike,
                            output_dir: str | os.PathLike, config: CreationConfig = CreationConfig(),
                            *, num_workers: int = 1, prefix: str = "train",
                            overwrite: bool = False) -> dict:
    """Writes `config.num_shards` TFRecord shards, `input_report.json` and `manifest.json` into
    `output_dir` from the text `inputs` (files, globs, directories, `.gz`, `.jsonl`,
    `tfds:NAME[:SPLIT]`), using `num_workers` processes. Returns the manifest.

    Bad input is skipped and counted per file (see `input_report.InputReport`; the report is
    logged and written as `input_report.json`), or, with `config.strict`, raises on the first
    problem, naming file and line. Missing inputs are skipped, but at least one must exist.

    `output_dir` must be new or empty, or hold an earlier create-data run's output and
    `overwrite` be set; anything else in it is refused (`shards.directory.StagedOutput`). The run
    writes into a staging directory inside it and puts the complete set in place at the end, the
    manifest last, so a manifest always describes complete shards and a reader never sees a mix
    of two runs' shards. If a write fails (a full disk), the OSError says what was being written,
    and the output directory is left as it was.
    """
    if remote_files.is_remote(output_dir):
        raise ValueError(f"--output-dir {output_dir}: the local runner writes to a local directory "
                         "(its worker processes write block files); write to Cloud Storage with "
                         "the Beam runner (--runner beam).")
    report = config.input_report()
    sources = expand_inputs(inputs, report)
    vocab_path = os.fspath(vocab_path)
    # Built here first, so that a bad vocab fails at once with its own message; one worker uses
    # it, more workers build their own.
    processor = BlockProcessor(vocab_path, config)
    output = StagedOutput(output_dir, overwrite=overwrite)
    work_dir = output.prepare()
    block_sizes: dict[int, list[int]] = {}
    shard_counts = np.zeros(config.num_shards, np.int64)
    stats: collections.Counter = collections.Counter()
    paths = [os.path.join(output_dir, shard_name(prefix, s, config.num_shards))
             for s in range(config.num_shards)]
    try:
        with (_worker_pool(num_workers, processor, vocab_path, work_dir) as pool,
              Progress("create-data", plain_text_bytes(sources), unit="B", unit_scale=True,
                       counts=("instances",)) as progress):
            for block_index, sizes, counts, block_stats in pool.map_blocks(
                    _process_to_file, enumerate(iter_blocks(sources, config, report))):
                block_sizes[block_index] = sizes
                shard_counts += counts
                stats += block_stats
                progress.update(block_stats["text_bytes"], instances=block_stats["instances"])
            progress.close(f"{stats['instances']:,} instances from {stats['documents']:,} documents "
                           f"into {config.num_shards} shards in {output_dir}", read_all=True)
            check_enough_documents(stats, report)
            pool.map_all(_merge_shard, [(work_dir, path, s, config.seed, block_sizes)
                                        for s, path in enumerate(paths)])
        for block_index in block_sizes:
            os.remove(os.path.join(work_dir, f"block-{block_index:07d}"))
        report.add_block_counts(stats)
        manifest = build_manifest(config, vocab_path, processor.tokenizer.vocab_size, sources,
                                  shard_counts.tolist(), stats, prefix)
        write_report_and_manifest(work_dir, report, manifest)
        output.commit()
    finally:
        output.discard()
    report.log(logger, os.path.join(output_dir, INPUT_REPORT_NAME))
    warn_about_statistics(manifest)
    return manifest


def _round_up(value: float) -> float:
    """`value` rounded up to two significant digits."""
    step = 10.0 ** (math.floor(math.log10(value)) - 1)
    return float(f"{math.ceil(value / step - 1e-9) * step:.2g}")


_TOO_FEW_DOCUMENTS = ("the input holds {n} non-empty document(s); next-sentence pairs need at least "
                      "two (separate documents with a blank line).")


def check_enough_documents(stats: collections.Counter, report: InputReport) -> None:
    """Raises a ValueError if the whole input holds fewer than two documents with tokens: there is
    nothing to pair. Often the reason is in the report (binary, empty or missing files), which the
    message summarizes."""
    if stats["documents"] < 2:
        raise ValueError(f"{_TOO_FEW_DOCUMENTS.format(n=stats['documents'])} {report.summary()}")


# Without problems about half the pairs take a random next segment (0.55 on the demo corpus).
_MOST_RANDOM_NEXT = 0.75
# A vocab of the corpus's language leaves a fraction of a percent of [UNK] (0.1% for English text
# with BERT's uncased vocab).
_MOST_UNK = 0.05


def warn_about_statistics(manifest: dict) -> None:
    """Logs a warning, with the numbers and what to do, for shards that were made but are hardly
    what was meant: documents that made no pairs, empty shards, mostly random next segments, text
    mostly [UNK]."""
    num = manifest["num_instances"]
    statistics = manifest["statistics"]
    config = manifest["config"]
    if manifest.get("num_unpaired_documents"):
        logger.warning(
            "%d document(s) made no sentence pairs: each was the only document with tokens in its "
            "block (the others held none: see empty_documents in the input report), and a random "
            "next segment must come from another document of the block. Their text is not in the "
            "shards.", manifest["num_unpaired_documents"])
    empty = [shard["file"] for shard in manifest["shards"] if not shard["num_instances"]]
    if empty:
        logger.warning("%d of the %d shards hold no instance (%s): the input made %d instances. "
                       "Write fewer shards (--num-shards), or give more text.", len(empty),
                       len(manifest["shards"]),
                       ", ".join(empty[:3]) + (" ..." if len(empty) > 3 else ""), num)
    fraction = statistics["random_next_fraction"]
    if num and fraction >= _MOST_RANDOM_NEXT:
        budget = config["max_seq_length"] - 3
        sentence = statistics.get("mean_sentence_tokens", 0.0)
        why = (f"a pair holds {budget} tokens (--max-seq-length {config['max_seq_length']} less "
               f"[CLS] and two [SEP]) and a sentence {sentence:.1f} on average, so most chunks "
               "hold a single sentence, whose next segment is always random: raise "
               "--max-seq-length (128 is usual)" if 2 * sentence > budget else
               "many documents are a single sentence, whose next segment is always random (see "
               "one_sentence_documents in the input report): check --format")
        logger.warning("%d of the %d pairs (%.0f%%) take a random next segment, where about half "
                       "is usual, so next-sentence prediction learns little: %s.",
                       round(fraction * num), num, 100 * fraction, why)
    unk = statistics.get("unk_fraction", 0.0)
    if unk >= _MOST_UNK:
        logger.warning("%.1f%% of the tokens are [UNK]: the vocab (%s) does not cover this text "
                       "(another language or script? a cased vocab read without --cased?). Make a "
                       "vocab of this corpus with `bert-jax vocab`.", 100 * unk,
                       manifest["vocab_file"])


class _worker_pool:
    """Runs block jobs in `num_workers` processes (inline for one), with a bounded number of
    blocks in flight so that reading never runs ahead of processing by more than that."""

    def __init__(self, num_workers: int, processor: BlockProcessor, vocab_path: str, work_dir: str):
        if num_workers < 1:
            raise ValueError(f"num_workers={num_workers} must be at least 1.")
        self.num_workers = num_workers
        self.processor = processor
        self.init_args = (vocab_path, processor.config, work_dir, os.getpid())
        self.executor = None

    def __enter__(self):
        if self.num_workers == 1:
            global _processor, _work_dir
            _processor, _work_dir = self.processor, self.init_args[2]
        else:
            # "spawn": the parent may hold TensorFlow or JAX threads, which fork does not survive.
            self.executor = concurrent.futures.ProcessPoolExecutor(
                self.num_workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=self.init_args)
        return self

    def __exit__(self, *exc):
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)
        return False

    def map_blocks(self, fn, jobs: Iterable[tuple]) -> Iterator:
        if self.executor is None:
            yield from (fn(*job) for job in jobs)
            return
        pending: set = set()
        for job in jobs:
            pending.add(self.executor.submit(fn, *job))
            if len(pending) >= 2 * self.num_workers:
                done, pending = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED)
                yield from (f.result() for f in done)
        for future in concurrent.futures.as_completed(pending):
            yield future.result()

    def map_all(self, fn, jobs: Sequence[tuple]) -> None:
        for _ in self.map_blocks(fn, jobs):
            pass
