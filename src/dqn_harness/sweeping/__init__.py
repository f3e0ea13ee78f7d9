"""Optuna sweeps: each trial is one composed Hydra config trained by train.py's own ``run()``.

spec.py (what a sweep is, checked), study.py (storage, sampler, pruner), objective.py (a
trial), workers.py (running trials), report.py (what a study found), main.py (``sweep.py``).
"""
