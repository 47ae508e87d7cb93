"""Parallelism: the device mesh and the rules that map logical axis names onto it (`sharding`),
and joining a multi-process run (`distributed`)."""
