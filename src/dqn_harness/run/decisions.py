"""What each evaluation decides for the run: keep the weights (last, and best so far), whether
the env is solved, and whether a sweep's pruner wants the run stopped.

Kept apart from evaluating itself so that a change to the solved rule or the checkpoint policy
never touches how episodes are played, and the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

BEST, LAST = "best.pt", "last.pt"


class Decisions:
    """Best/last weights files, the solved rule and the pruning hook, fed each evaluation.

    Args:
        ckpt_dir: where ``best.pt`` and ``last.pt`` go.
        threshold: mean return that counts as solved (``None``: never solved).
        robust_epsilon, robust_threshold: a robust solve (``eval.robust_*``): an evaluation
            that reaches ``threshold`` solves only if its games at ``robust_epsilon`` average
            ``robust_threshold`` or more; the solving policy is then also the best one kept.
        stop_on_solve: ask training to end once solved.
        save_weights: writes the run's current policy to a weights file (path, and the agent
            step of the evaluation that judged it, which labels the file).
        on_result: a sweep's pruning hook, called with (agent step, mean); True stops the run.
    """

    def __init__(
        self,
        *,
        ckpt_dir: Path,
        threshold: float | None,
        stop_on_solve: bool,
        robust_epsilon: float | None = None,
        robust_threshold: float | None = None,
        save_weights: Callable[[Path, int], None],
        on_result: Callable[[int, float], bool] | None = None,
    ) -> None:
        self.ckpt_dir = ckpt_dir
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self.threshold = threshold
        self.robust_epsilon, self.robust_threshold = robust_epsilon, robust_threshold
        self.robust_mean: float | None = None  # of the last evaluation that played those games
        self.stop_on_solve = stop_on_solve
        self.save_weights = save_weights
        self.on_result = on_result
        self.pruned = False
        self.best_mean: float | None = None
        self.solved_at: int | None = None
        self.best_path: Path | None = None
        self.last_path: Path | None = None

    @property
    def solved(self) -> bool:
        return self.solved_at is not None

    @property
    def should_stop(self) -> bool:
        return self.pruned or (self.stop_on_solve and self.solved)

    def after_evaluation(
        self, env_steps: int, mean: float, robust_mean: float | None = None
    ) -> str | None:
        """Keep the weights, decide solved and pruned; returns a line for the user when the
        mean reached the threshold but the robust games did not (training goes on)."""
        self.save_last(env_steps)
        reached = self.threshold is not None and mean >= self.threshold
        solves = reached and self.solved_at is None
        said = None
        if solves and self.robust_threshold is not None:
            self.robust_mean = robust_mean
            solves = robust_mean is not None and robust_mean >= self.robust_threshold
            if not solves and robust_mean is not None:
                said = (
                    f"eval mean {mean:.2f} reached {self.threshold}, but the games at epsilon "
                    f"{self.robust_epsilon} averaged {robust_mean:.2f}, under "
                    f"{self.robust_threshold}: not solved yet, training goes on"
                )
        if self.best_mean is None or mean > self.best_mean or solves:
            self.best_mean = mean  # a robust solve keeps its own policy, not a higher brittle one
            self.best_path = self.ckpt_dir / BEST
            self.save_weights(self.best_path, env_steps)
        if solves:
            self.solved_at = env_steps
        if self.on_result is not None and self.on_result(env_steps, mean):
            self.pruned = True
        return said

    def save_last(self, env_steps: int) -> None:
        """last.pt: the current policy, labelled with the agent step it was judged at."""
        self.last_path = self.ckpt_dir / LAST
        self.save_weights(self.last_path, env_steps)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_mean": self.best_mean,
            "solved_at": self.solved_at,
            "robust_mean": self.robust_mean,
            "best_path": None if self.best_path is None else str(self.best_path),
            "last_path": None if self.last_path is None else str(self.last_path),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_mean, self.solved_at = state["best_mean"], state["solved_at"]
        self.robust_mean = state.get("robust_mean")  # absent from checkpoints before the key
        self.best_path = None if state["best_path"] is None else Path(state["best_path"])
        self.last_path = None if state["last_path"] is None else Path(state["last_path"])

    def summary(self) -> dict[str, Any]:
        best = self.best_path or self.last_path
        return {
            "best_eval_return": self.best_mean,
            "solved": self.solved,
            "solved_at_step": self.solved_at,
            "robust_eval_return": self.robust_mean,
            "reward_threshold": self.threshold,
            "checkpoint": None if best is None else str(best),
        }
