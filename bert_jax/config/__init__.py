"""The run configuration: defaults (`defaults`), config files and `--set` overrides (`files`),
and the checks a config passes before anything is compiled (`validation`)."""
