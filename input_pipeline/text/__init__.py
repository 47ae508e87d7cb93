"""Text in: files, globs, gzip, JSON Lines and TFDS sources (`sources`, `tfds_spec`), the report of
what was skipped and why (`report`), sentence splitting (`sentences`) and the standard library's
docstrings as a corpus (`stdlib_corpus`)."""
