"""The errors that stop a run on purpose (kept free of heavy imports, so the command line can
catch them without loading JAX)."""


class RunStopped(RuntimeError):
    """The run stopped rather than go on wrongly (a failed checkpoint save, a diverged loss); its
    last good checkpoint is in place and the message says what to do."""


class WorkdirInUse(RuntimeError):
    """Another run holds the work directory (`state.workdir_lock`); nothing was written."""
