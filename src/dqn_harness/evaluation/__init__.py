"""Evaluating a policy: ``evaluate()`` plays N episodes (``play.py``), ``Evaluator`` does it
periodically during training, ``video.py`` films episodes."""

from dqn_harness.evaluation.evaluator import Evaluator
from dqn_harness.evaluation.play import evaluate

__all__ = ["Evaluator", "evaluate"]
