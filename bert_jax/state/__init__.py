"""What a run holds and keeps: the train state and its sharded creation (`train_state`), the
optimizer (`optimizer`), orbax checkpoints (`checkpointer`) and reading a finished run's parameters
(`trained_params`)."""
