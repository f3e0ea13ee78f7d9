"""Evaluation protocols as config (conf/protocol/) on real ALE games, through both backends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dqn_harness.envs import make_vec_env
from dqn_harness.errors import UsageError
from tests.conftest import run_cli, run_train


def env_cfg(compose_config, *overrides: str):
    return compose_config("env=breakout", *overrides, "run_name=x").env


def episode_ends(env, steps: int, actions: int = 4, seed: int = 0) -> list[dict]:
    """Random play; at each episode end: lives left, the game's frame count, the return."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    ends, total = [], 0.0
    for _ in range(steps):
        _, reward, terminated, truncated, info = env.step(rng.integers(actions, size=1))
        total += float(reward[0])
        if terminated[0] or truncated[0]:
            ends.append({"lives": int(info["lives"][0]), "frame": int(info["frame_number"][0])})
            ends[-1]["return"], total = total, 0.0
    return ends


def test_a_lost_life_ends_a_training_episode_and_the_game_plays_on(compose_config):
    """protocol=nature on Breakout: each training episode ends at a lost life (5, 4, 3 ... left),
    the game is not reset in between (its lives keep falling), while the evaluation env of the
    same config plays each game to its end."""
    cfg = env_cfg(compose_config, "protocol=nature")
    assert cfg.terminal_on_life_loss
    train = make_vec_env(cfg, 1, training=True)
    ends = episode_ends(train, 1500)
    train.close()
    lives = [e["lives"] for e in ends]
    assert lives[:5] == [4, 3, 2, 1, 0], lives  # one game: five episodes, one per life
    if len(lives) > 5:
        assert lives[5] == 4  # then a new game
    evaluation = make_vec_env(cfg, 1, training=False)
    whole = episode_ends(evaluation, 1500)
    evaluation.close()
    assert whole and all(e["lives"] == 0 for e in whole)  # whole games only
    # the same game, scored per life in training and whole in evaluation
    assert sum(e["return"] for e in ends[:5]) >= 0 and len(whole) < len(ends)


def test_the_harness_protocol_never_ends_an_episode_at_a_lost_life(compose_config):
    env = make_vec_env(env_cfg(compose_config), 1, training=True)
    ends = episode_ends(env, 1500)
    env.close()
    assert ends and all(e["lives"] == 0 for e in ends)


def test_ale_vector_cannot_play_on_after_a_lost_life_and_says_so(tmp_path):
    """ALE's vector env resets the whole game at a lost life (its episodic_life): the key it
    cannot honour is refused in one line rather than silently meaning something else."""
    proc = run_train("env=breakout", "protocol=nature", "env.backend=ale_vector", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: env.terminal_on_life_loss: ")


@pytest.mark.parametrize("backend", ["gymnasium", "ale_vector"])
def test_both_backends_honour_the_action_set_and_the_frame_cap(compose_config, backend):
    """machado's full 18-action set, and a per-episode frame cap (400 frames = 100 agent
    steps at frame_skip 4), through either backend."""
    cfg = env_cfg(compose_config, "protocol=machado", f"env.backend={backend}")
    env = make_vec_env(cfg, 1, training=False)
    assert env.single_action_space.n == 18
    env.close()
    capped = env_cfg(
        compose_config,
        f"env.backend={backend}",
        "env.max_num_frames_per_episode=400",
        "env.noop_max=0",  # no-op starts spend frames of the cap before the first agent step
    )
    env = make_vec_env(capped, 1, training=False)
    env.reset(seed=0)
    lengths = []
    for n in range(1, 451):
        _, _, terminated, truncated, _ = env.step(np.zeros(1, dtype=np.int64))  # NOOP: no losses
        if terminated[0] or truncated[0]:
            lengths.append(n)
            break
    env.close()
    assert lengths and 96 <= lengths[0] <= 100, lengths  # FIRE at reset spends up to 2 steps


def test_protocol_presets_set_what_their_papers_say(compose_config):
    nature, machado, atari100k, harness = (
        compose_config("env=pong", f"protocol={p}")
        for p in ("nature", "machado", "atari100k", "harness")
    )
    assert (nature.eval.epsilon, nature.eval.episodes, nature.env.terminal_on_life_loss) == (
        0.05,
        30,
        True,
    )
    assert nature.env.max_num_frames_per_episode == 18_000  # 5 minutes at 60 frames/s
    assert (machado.env.repeat_action_probability, machado.env.full_action_space) == (0.25, True)
    assert (
        not machado.env.terminal_on_life_loss and machado.env.max_num_frames_per_episode == 108_000
    )
    assert atari100k.env.terminal_on_life_loss and atari100k.eval.epsilon == 0.001
    assert atari100k.env.repeat_action_probability == 0.0
    assert harness == compose_config("env=pong")  # env=pong's own protocol is the harness's
    assert compose_config("env=cartpole").protocol.name == "preset"


def test_an_atari_protocol_on_a_game_without_ale_is_refused(compose_config):
    from dqn_harness.config import validate

    with pytest.raises(UsageError) as info:
        validate(compose_config("env=cartpole", "protocol=nature"))
    assert info.value.key == "protocol"


@pytest.mark.slow
def test_the_protocol_is_recorded_by_name_and_scoring_names_its_own(tmp_path):
    """config.json (and so W&B's config) and every eval-*.json say which protocol a number was
    measured under; evaluate.py protocol=<name> scores under another one, and refuses one whose
    action set the network was not trained on."""
    run_dir = tmp_path / "run"
    proc = run_train(
        "env=breakout",
        "protocol=nature",
        "total_steps=600",
        "learning_starts=500",
        "buffer.capacity=1000",
        "eval.every=600",
        "eval.episodes=1",
        "eval.num_envs=1",
        "env.max_num_frames_per_episode=2000",
        "logger=none",
        "progress=false",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((run_dir / "config.json").read_text())["protocol.name"] == "nature"
    common = ("episodes=2", "num_envs=1", "env.max_num_frames_per_episode=2000", "logger=none")
    modified = "modified: episodes=2 num_envs=1 env.max_num_frames_per_episode=2000"
    for extra, name, epsilon in (((), "nature", 0.05), (("protocol=harness",), "harness", 0.01)):
        proc = run_cli("evaluate.py", f"run={run_dir}", *extra, *common, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        [path] = Path(run_dir).glob("eval-best-*.json")
        result = json.loads(path.read_text())
        assert result["protocol"] == f"{name}, {modified}" and result["epsilon"] == epsilon
        path.unlink()
    proc = run_cli("evaluate.py", f"run={run_dir}", "protocol=machado", "logger=none", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: protocol: machado plays")
