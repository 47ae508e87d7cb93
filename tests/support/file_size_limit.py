"""Runs a command with a file-size limit, as a stand-in for a full disk:

  python tests/support/file_size_limit.py MAX_BYTES COMMAND...

A write past the limit fails with EFBIG ("File too large"), as one fails with ENOSPC on a full
disk: SIGXFSZ, which would kill the process instead, is ignored (an ignored signal stays ignored
across exec, and so does the limit). Tests start this instead of setting the limit in a
`preexec_fn`, which runs Python between fork and exec: unsafe in a process with JAX's threads.
"""

import os
import resource
import signal
import sys

if __name__ == "__main__":
    max_bytes, command = int(sys.argv[1]), sys.argv[2:]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    os.execvp(command[0], command)
