"""Train a DQN or tabular Q-learning agent: ``python train.py env=pong`` (see README)."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from dqn_harness.cli import preflight, train_main

CONF = Path(__file__).resolve().parent / "conf"


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    train_main(cfg)


if __name__ == "__main__":
    sys.argv[1:] = preflight(CONF, sys.argv[1:])
    main()
