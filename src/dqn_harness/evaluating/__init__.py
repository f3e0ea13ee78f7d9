"""Score checkpoints under a stated protocol: ``python evaluate.py`` (see main.py)."""
