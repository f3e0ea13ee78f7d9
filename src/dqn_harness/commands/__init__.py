"""The four commands (train, evaluate, sweep, compare): argv -> call -> exit code, each through
the one entry wrapper (``entry.py``)."""
