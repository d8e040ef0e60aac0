"""One file per algorithm; each states its update rule and nothing else."""
