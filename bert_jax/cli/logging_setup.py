"""How every subcommand logs: timestamped lines at INFO, without the libraries' chatter."""


def configure_logging() -> None:
    """INFO lines as `HH:MM:SS message`; absl, JAX's backend probes and orbax at WARNING."""
    # Imported here, not above: `bert-jax --help` never logs, and logging takes 4 ms to import.
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    # Orbax and JAX log every checkpoint detail and backend probe at INFO through absl.
    for name in ("absl", "jax._src.xla_bridge", "orbax"):
        logging.getLogger(name).setLevel(logging.WARNING)
