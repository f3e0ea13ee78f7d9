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
    frames = [e["frame"] for e in ends[:5]]
    assert frames == sorted(frames) and frames[0] > 0  # the emulator's clock runs on: no reset
    evaluation = make_vec_env(cfg, 1, training=False)
    whole = episode_ends(evaluation, 1500)
    evaluation.close()
    assert whole and all(e["lives"] == 0 for e in whole)  # whole games only


def test_the_lives_of_a_training_game_add_up_to_the_whole_game(compose_config):
    """The same actions, from the same seed, through a training env (a lost life ends an
    episode) and an evaluation env (whole games): the five training episodes' returns add up
    to the game's return, and the game ends at the same emulator frame. The training env's
    reset after a lost life plays NOOP (SB3's EpisodicLifeEnv) and then FIRE, UP (FireReset);
    the replay into the whole game plays them too."""
    from dqn_harness.envs import make_env

    cfg = env_cfg(compose_config, "protocol=nature")
    rng = np.random.default_rng(5)  # a game whose third life scores
    train = make_env(cfg, training=True)
    train.reset(seed=11)
    played: list[int] = []
    lives_returns: list[float] = []
    total, end_frame = 0.0, None
    for _ in range(20_000):  # one random game of Breakout is ~1,000 agent steps
        action = int(rng.integers(4))
        played.append(action)
        _, reward, terminated, truncated, info = train.step(action)
        total += float(reward)
        if terminated or truncated:
            lives_returns.append(total)
            total = 0.0
            if info["lives"] == 0:
                end_frame = info["frame_number"]
                break
            train.reset()
            played += [0, 1, 2]  # what that reset pressed
    train.close()
    assert end_frame is not None, "the game never ended: a lost life reset it?"
    assert len(lives_returns) == 5 and sum(lives_returns[1:]) > 0, lives_returns

    whole = make_env(cfg, training=False)
    whole.reset(seed=11)
    game, steps = 0.0, 0
    for action in played:
        _, reward, terminated, truncated, info = whole.step(action)
        game, steps = game + float(reward), steps + 1
        if terminated or truncated:
            break
    whole.close()
    assert steps == len(played) and info["frame_number"] == end_frame  # the same game, to its end
    assert game == sum(lives_returns), (game, lives_returns)


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
    from dqn_harness.config import validate

    nature, machado, atari100k, harness = (
        compose_config("env=pong", f"protocol={p}")
        for p in ("nature", "machado", "atari100k", "harness")
    )
    # Mnih et al. 2015: life loss ends training episodes, <= 30 no-ops, 30 games of 5 minutes
    # at epsilon 0.05, no sticky actions, the minimal action set
    assert (nature.eval.epsilon, nature.eval.episodes, nature.env.terminal_on_life_loss) == (
        0.05,
        30,
        True,
    )
    assert nature.env.max_num_frames_per_episode == 18_000  # 5 minutes at 60 frames/s
    assert nature.env.noop_max == 30 and nature.eval.num_envs == 5  # 30 games, 6 per env
    assert nature.env.repeat_action_probability == 0.0 and not nature.env.full_action_space
    # Machado et al. 2018: sticky actions 0.25, all 18 actions, no no-op starts, no life
    # signal, 30-minute episodes; evaluated over 20 games at epsilon 0.01
    assert (machado.env.repeat_action_probability, machado.env.full_action_space) == (0.25, True)
    assert (
        not machado.env.terminal_on_life_loss and machado.env.max_num_frames_per_episode == 108_000
    )
    assert machado.env.noop_max == 0
    assert (machado.eval.episodes, machado.eval.epsilon) == (20, 0.01)
    # Atari 100k as Dopamine runs it: life loss, no sticky actions, 100 games at epsilon 0.001,
    # episodes capped at 27,000 agent steps = 108,000 frames
    assert atari100k.env.terminal_on_life_loss and atari100k.eval.epsilon == 0.001
    assert atari100k.env.repeat_action_probability == 0.0
    assert atari100k.eval.episodes == 100 and atari100k.env.noop_max == 30
    assert atari100k.env.max_num_frames_per_episode == 108_000
    assert atari100k.env.max_num_frames_per_episode // atari100k.env.frame_skip == 27_000
    assert harness == compose_config("env=pong")  # env=pong's own protocol is the harness's
    assert (harness.eval.episodes, harness.eval.epsilon, harness.env.noop_max) == (20, 0.01, 30)
    assert compose_config("env=cartpole").protocol.name == "preset"
    for cfg in (nature, machado, atari100k, harness):
        validate(cfg)  # every preset is a config a run accepts


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

    def score(*args: str) -> dict:
        """evaluate.py on the run's best.pt; its result file, read and removed."""
        proc = run_cli("evaluate.py", f"run={run_dir}", *args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        [path] = Path(run_dir).glob("eval-best-*.json")
        result = json.loads(path.read_text())
        path.unlink()
        return result

    common = ("episodes=2", "num_envs=1", "env.max_num_frames_per_episode=2000", "logger=none")
    modified = "modified: episodes=2 num_envs=1 env.max_num_frames_per_episode=2000"
    for extra, name, epsilon in (((), "nature", 0.05), (("protocol=harness",), "harness", 0.01)):
        result = score(*extra, *common)
        assert result["protocol"] == f"{name}, {modified}" and result["epsilon"] == epsilon
        assert result["env"] == {
            "id": "ALE/Breakout-v5",
            "repeat_action_probability": 0.0,
            "max_episode_steps": None,
            "max_num_frames_per_episode": 2000,
            "noop_max": 30,
        }
    # a protocol's own emulator keys reach the games: nature's 18,000-frame cap (the run was
    # trained with 2,000), and settings given on top (sticky actions, no-ops, a frame cap)
    result = score("protocol=nature", "episodes=1", "num_envs=1", "logger=none")
    assert result["env"]["max_num_frames_per_episode"] == 18_000 and result["protocol"].startswith(
        "nature"
    )
    given = (
        "env.noop_max=0",
        "env.repeat_action_probability=0.25",
        "env.max_num_frames_per_episode=400",
    )
    result = score("protocol=harness", "episodes=2", "num_envs=1", "logger=none", *given)
    assert result["env"] == {
        "id": "ALE/Breakout-v5",
        "repeat_action_probability": 0.25,
        "max_episode_steps": None,
        "max_num_frames_per_episode": 400,
        "noop_max": 0,
    }
    assert max(result["lengths"]) <= 100  # 400 frames at frame_skip 4: the cap was played
    # both games were cut by the cap (a few agent steps short of 100: the reset's no-ops and
    # FIRE spend frames of it too), and both are counted
    assert result["capped_episodes"] == 2 and min(result["lengths"]) < 100, result["lengths"]
    proc = run_cli("evaluate.py", f"run={run_dir}", "protocol=machado", "logger=none", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: protocol: machado plays")
