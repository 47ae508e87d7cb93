"""The training loop and what it is made of: the pure step (`step`), the loop (`loop`), the data
phases (`phases`), resuming (`resume`), progress reports (`progress`) and preemption."""
