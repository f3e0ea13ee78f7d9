"""One training run: the runner and its phases, cadences, decisions, checkpoints, stopping."""
