"""dqn-harness: DQN and tabular Q-learning with Hydra configs, Lightning and W&B tracking."""

__version__ = "0.1.0"
