"""What ``evaluate.py`` does with a checkpoint: rebuild its policy, play a protocol, report."""
