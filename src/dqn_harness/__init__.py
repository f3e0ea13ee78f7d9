"""dqn-harness: DQN and tabular Q-learning with Hydra configs, Lightning and W&B tracking."""

import warnings

# Emitted by pytorch_lightning at import time against newer torch; nothing for a user to act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

__version__ = "0.1.0"
