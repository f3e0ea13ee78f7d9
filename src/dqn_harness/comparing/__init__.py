"""``python compare.py``: runs.py (which runs), stats.py (over seeds), report.py (the
tables and the curves PNG), main.py (the command)."""
