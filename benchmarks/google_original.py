"""Google's original `create_pretraining_data.py` (the `bert-tensorflow==1.0.4` wheel, written for
TensorFlow 1) run under TensorFlow 2, timed in a subprocess; plus helpers shared with
`create_data_throughput.py`: timing a subprocess with its peak RSS, and instance statistics read
back from a TFRecord file.

  python benchmarks/google_original.py --input_file corpus.txt --output_file out.tfrecord \
      --vocab_file vocab.txt --max_seq_length 128 --max_predictions_per_seq 20 --dupe_factor 10

As a script it runs the original in this process with the original's own flags (what the
subprocess of `run_google_original` executes), after putting `tensorflow.compat.v1` in
`sys.modules` under the name `tensorflow`, so that the TF 1 script's `tf.flags`, `tf.gfile`,
`tf.python_io` and `tf.logging` resolve. Nothing else of the original is changed. `--timings_file`
(ours, not the original's) receives how long `import tensorflow` and the original itself took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def child_env() -> dict[str, str]:
    """The same environment for every timed process: TensorFlow's start-up logging off and its
    oneDNN kernels off (as `input_pipeline/__init__.py` sets them for ours)."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}


# Runs argv[2:], then writes its wall seconds, CPU seconds and peak RSS to argv[1]. The timed
# command is started from this small process rather than from the benchmark, because Linux keeps a
# process's peak RSS across fork and exec: a child of a parent that has imported TensorFlow would
# report at least the parent's 700 MB.
_LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as f:
    json.dump({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
               "peak_rss_mb": usage.ru_maxrss / 1024}, f)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_timed(command: list[str], log_path: str) -> dict:
    """Runs `command`, stdout and stderr to `log_path`; returns its wall seconds, CPU seconds and
    the peak RSS of the largest process in its tree (wait4's ru_maxrss covers the process and the
    descendants it waited for, so a pool of workers counts as its largest member)."""
    result_path = log_path + ".usage.json"
    with open(log_path, "wb") as log:
        returncode = subprocess.call([sys.executable, "-c", _LAUNCHER, result_path, *command],
                                     stdout=log, stderr=subprocess.STDOUT, env=child_env())
    if returncode != 0:
        with open(log_path, errors="replace") as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"{' '.join(command)} exited with {returncode}:\n{tail}")
    with open(result_path) as f:
        return json.load(f)


def run_google_original(input_file: str, output_file: str, vocab_file: str, *, max_seq_length: int,
                        max_predictions_per_seq: int, dupe_factor: int,
                        masked_lm_prob: float = 0.15, random_seed: int = 12345,
                        do_lower_case: bool = True) -> dict:
    """Runs the original in a fresh Python process; returns `run_timed`'s numbers plus
    `tf_import_seconds` and `original_seconds` measured inside it (the rest is interpreter start
    and exit). Nothing is subtracted from `seconds`."""
    timings_file = output_file + ".timings.json"
    command = [sys.executable, os.path.abspath(__file__), f"--timings_file={timings_file}",
               f"--input_file={input_file}", f"--output_file={output_file}",
               f"--vocab_file={vocab_file}", f"--do_lower_case={do_lower_case}",
               f"--max_seq_length={max_seq_length}",
               f"--max_predictions_per_seq={max_predictions_per_seq}",
               f"--masked_lm_prob={masked_lm_prob}", f"--random_seed={random_seed}",
               f"--dupe_factor={dupe_factor}"]
    result = run_timed(command, output_file + ".log")
    with open(timings_file) as f:
        result.update(json.load(f))
    return result


def record_statistics(files: list[str], max_seq_length: int, max_predictions_per_seq: int) -> dict:
    """Instances, mean tokens (input_mask), fraction random-next and mean predictions
    (masked_lm_weights) of TFRecord files in the original schema."""
    import tensorflow as tf

    from input_pipeline.shards.features import parse_examples

    ds = tf.data.TFRecordDataset(files).batch(4096).map(
        lambda s: parse_examples(s, max_seq_length, max_predictions_per_seq))
    count = tokens = random_next = predictions = 0
    for batch in ds.as_numpy_iterator():
        count += len(batch["next_sentence_labels"])
        tokens += int(batch["input_mask"].sum())
        random_next += int(batch["next_sentence_labels"].sum())
        predictions += float(batch["masked_lm_weights"].sum())
    n = max(count, 1)
    return {"num_instances": count, "mean_tokens": tokens / n,
            "random_next_fraction": random_next / n, "mean_predictions": predictions / n}


def _main_in_this_process() -> None:
    timings_file = None
    argv = [sys.argv[0]]
    for arg in sys.argv[1:]:
        if arg.startswith("--timings_file="):
            timings_file = arg.split("=", 1)[1]
        else:
            argv.append(arg)

    start = time.perf_counter()
    import tensorflow
    tf_import_seconds = time.perf_counter() - start
    sys.modules["tensorflow"] = tensorflow.compat.v1  # The TF 1 API under its TF 1 name.

    start = time.perf_counter()
    from bert import create_pretraining_data as original
    original.FLAGS(argv)  # What tf.app.run does before calling main, without its sys.exit.
    for name in ("input_file", "output_file", "vocab_file"):
        if getattr(original.FLAGS, name) is None:
            raise SystemExit(f"--{name} is required")
    original.main(None)
    original_seconds = time.perf_counter() - start

    if timings_file:
        with open(timings_file, "w") as f:
            json.dump({"tf_import_seconds": tf_import_seconds,
                       "original_seconds": original_seconds}, f)


if __name__ == "__main__":
    _main_in_this_process()
