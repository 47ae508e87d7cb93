"""A few MB of real English prose built offline: the docstrings of the standard library and of the
installed packages, in BERT's input format (one sentence per line, a blank line between documents).

  python benchmarks/english_corpus.py --output /tmp/english.txt --megabytes 8

Each module is one document (its docstrings' prose, as in `input_pipeline.text.stdlib_corpus`). Sources
are read in a fixed order (the standard library, then PACKAGES, skipping any not installed) and
documents are added until the next one would pass the cap, so with the same installed versions
the file is byte-identical from run to run; the printed SHA-256 says whether two runs used the
same text. The standard library gives about 1.4 MB; the project's own dependencies (numpy, jax,
tensorflow) bring it to about 6 MB, and torch and transformers (the test extra) past 10 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import warnings
from pathlib import Path

from input_pipeline.text.stdlib_corpus import module_files, module_sentences, stdlib_dir

# Dependencies of bert-jax first, then the test extra, then whatever else happens to be installed.
PACKAGES = ("numpy", "jax", "flax", "optax", "tensorflow", "torch", "transformers",
            "scipy", "sympy", "sklearn", "networkx")


def source_roots(packages: tuple[str, ...] = PACKAGES) -> list[tuple[str, Path]]:
    """(name, directory) of the standard library and of each installed package, in order.
    Packages are located without being imported."""
    roots = [("stdlib", stdlib_dir())]
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            roots.append((name, Path(list(spec.submodule_search_locations)[0])))
    return roots


def write_english_corpus(path: str | os.PathLike, max_bytes: int,
                         packages: tuple[str, ...] = PACKAGES) -> dict:
    """Writes at most `max_bytes` of documents to `path`; returns sizes, sources and SHA-256."""
    stats = {"bytes": 0, "documents": 0, "sentences": 0, "sources": []}
    digest = hashlib.sha256()
    tmp = Path(f"{path}.tmp-{os.getpid()}")
    full = False
    with open(tmp, "wb") as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ast.parse warns about invalid escapes in old sources.
        for name, root in source_roots(packages):
            stats["sources"].append(name)
            for module in module_files(root):
                sentences = module_sentences(module)
                if not sentences:
                    continue
                data = ("\n".join(sentences) + "\n\n").encode("utf-8")
                if stats["bytes"] + len(data) > max_bytes:
                    full = True
                    break
                out.write(data)
                digest.update(data)
                stats["bytes"] += len(data)
                stats["documents"] += 1
                stats["sentences"] += len(sentences)
            if full:
                break
    os.replace(tmp, path)
    stats["sha256"] = digest.hexdigest()
    if not full:
        print(f"warning: only {stats['bytes'] / 1e6:.2f} MB of docstrings are installed, less than "
              f"the {max_bytes / 1e6:.2f} MB asked for")
    return stats


def describe(stats: dict) -> str:
    return (f"{stats['bytes'] / 1e6:.2f} MB, {stats['documents']:,} documents, "
            f"{stats['sentences']:,} sentences of docstrings from {', '.join(stats['sources'])} "
            f"(sha256 {stats['sha256'][:12]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True)
    parser.add_argument("--megabytes", type=float, default=8.0)
    args = parser.parse_args()
    print(describe(write_english_corpus(args.output, int(args.megabytes * 1e6))))


if __name__ == "__main__":
    main()
