"""The errors that stop a run on purpose (kept free of heavy imports, so the command line can
catch them without loading JAX)."""


class RunStopped(RuntimeError):
    """The run stopped rather than go on wrongly (a failed checkpoint save, a diverged loss); its
    last good checkpoint is in place and the message says what to do."""


class DamagedWeights(ValueError):
    """A weight file or checkpoint that cannot be used: unreadable (empty, truncated, not the
    format its name says) or holding non-finite values. The message names the file and, for
    values, the tensor; the command line prints it as one line (a ValueError: exit status 2)."""


class WorkdirInUse(RuntimeError):
    """Another run holds the work directory (`state.workdir_lock`); nothing was written."""
