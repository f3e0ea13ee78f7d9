"""Tabular Q-learning: the Q-table and its TD update (``qtable.py``), the loop (``learner.py``)."""
