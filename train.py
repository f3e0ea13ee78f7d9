"""Train a DQN or tabular Q-learning agent: ``python train.py env=pong`` (see README)."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from dqn_harness.commands.multirun import is_multirun
from dqn_harness.commands.train import finish_multirun, preflight_or_exit, train_main

CONF = Path(__file__).resolve().parent / "conf"


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    train_main(cfg)


if __name__ == "__main__":
    sys.argv[1:] = preflight_or_exit(CONF, sys.argv[1:])
    if not is_multirun(sys.argv[1:]):
        main()
    else:
        try:
            main()
            code = 0
        except SystemExit as exc:  # an interrupted job stops the grid; Hydra's own errors exit 1
            code = exc.code if isinstance(exc.code, int) else 1
        sys.exit(finish_multirun(sys.argv[1:], code))
