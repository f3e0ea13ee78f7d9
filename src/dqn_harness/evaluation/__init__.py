from dqn_harness.evaluation.evaluator import Evaluator, evaluate

__all__ = ["Evaluator", "evaluate"]
