"""What a run holds and keeps: the train state and its sharded creation (`train_state`), the
optimizer (`optimizer`), orbax checkpoints (`checkpointer`), reading a finished run's parameters
(`trained_params`) and the lock that keeps a work directory to one run (`workdir_lock`)."""
