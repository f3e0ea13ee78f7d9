"""What a run leaves to look at: the metrics log (``metrics.py``), the loggers and W&B's set-up
(``wandb_setup.py``), the progress bar (``progress.py``) and the run summary (``summary.py``)."""
