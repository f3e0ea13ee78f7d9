"""Every shipped config composes and validates; every bad input fails with a short, named error."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from dqn_harness.config import validate
from dqn_harness.errors import UsageError

from .conftest import compose_cfg, run_train


@pytest.mark.parametrize(
    "overrides",
    [
        ["env=pong"],
        ["env=breakout"],
        ["env=cartpole"],
        ["env=frozenlake"],
        ["env=frozenlake", "algo=tabular"],
        ["env=pong", "env.backend=ale_vector", "env.num_envs=4"],
        ["env=pong", "env.frame=seed_crop"],
        ["env=atari", "env.id=ALE/SpaceInvaders-v5"],
        ["env=atari_fast", "env.id=ALE/SpaceInvaders-v5"],
        ["env=cartpole", "schedule=exponential"],
        ["env=cartpole", "logger=csv", "trainer=cpu"],
        ["env=pong", "model=dueling_cnn", "buffer=prioritized", "algo.double=true"],
        ["env=cartpole", "model=dueling_mlp", "algo.n_step=5", "eval.video=true"],
        ["env=pong", "+experiment=rainbow_lite"],
        ["env=cartpole", "+experiment=rainbow_lite"],
        ["+experiment=pong_candidate_n4"],
        ["+experiment=pong_nature"],
        ["+experiment=pong_dqn"],
        ["+experiment=pong_n4"],
        ["+experiment=pong_nips"],
        ["+experiment=pong_nips_drop"],
        ["+experiment=pong_nips_lr2e4"],
        ["+experiment=pong_nips_robust"],
        ["+experiment=pong_f1"],
        ["env=pong", "algo.augment=shift"],
    ],
)
def test_shipped_configs_compose_and_validate(overrides):
    cfg = compose_cfg(*overrides)
    validate(cfg)
    assert OmegaConf.missing_keys(cfg) == set()


def test_env_presets_pick_their_model_and_schedule():
    assert compose_cfg("env=pong").model.name == "nips_cnn"
    assert compose_cfg("env=pong", "model=nature_cnn").model.name == "nature_cnn"
    assert compose_cfg("env=breakout").model.name == "nature_cnn"
    assert compose_cfg("env=cartpole").model.name == "mlp"
    assert compose_cfg("env=cartpole").schedule.name == "classic"
    # the command line still wins over the preset
    assert compose_cfg("env=cartpole", "schedule=fast").schedule.name == "fast"


def plain(*overrides: str) -> dict:
    """A composed config as a dict, without its run name (a timestamp)."""
    cfg = OmegaConf.to_container(compose_cfg(*overrides), resolve=False)
    cfg.pop("run_name")
    return cfg


def test_pong_f2_presets_are_pong_f1_with_their_keys_and_the_last_is_env_pong():
    """The pong_f2 presets build on the recipe they were screened against (pong_f1, env=pong as
    it was then), not on env=pong, so that a change to env=pong does not change what they run;
    each differs from the one before in its own keys, and the last is today's env=pong but for
    how often an evaluation may stop short (each 10 games there, each 4 in env=pong)."""
    f1 = plain("+experiment=pong_f1")
    f2 = {**f1, "train_freq": 2, "batch_size": 64, "optim": {**f1["optim"], "lr_drop_to": 6e-5}}
    assert plain("+experiment=pong_f2") == f2
    lr4e4 = {**f2, "optim": {**f2["optim"], "lr": 4e-4}}
    assert plain("+experiment=pong_f2_lr4e4") == lr4e4
    r40 = {**lr4e4, "eval": {**lr4e4["eval"], "robust_episodes": 40}}
    assert plain("+experiment=pong_f2_r40") == r40
    t2k = {**r40, "algo": {**r40["algo"], "target_sync": 2000}}
    assert plain("+experiment=pong_f2_t2k") == t2k
    pong = plain("env=pong")
    assert pong["eval"]["min_episodes"] == 4
    assert {**pong, "eval": {**pong["eval"], "min_episodes": 10}} == t2k


def test_pong_is_the_nips_recipe_at_an_update_every_2_steps_and_the_earlier_ones_stay_reachable():
    pong, classic = compose_cfg("env=pong"), compose_cfg("+experiment=pong_nature")
    assert (pong.algo.n_step, pong.train_freq, pong.trainer.precision) == (4, 2, "bf16-mixed")
    assert (pong.model.name, list(pong.model.hidden), pong.batch_size) == ("nips_cnn", [256], 64)
    assert pong.algo.target_sync == 2000  # 1,000 updates between syncs, as at an update per step
    epsilon = pong.schedule.epsilon
    assert (epsilon.start, epsilon.end, epsilon.steps) == (1.0, 0.05, 5_000)
    assert (pong.optim.lr, pong.optim.lr_drop_score, pong.optim.lr_drop_to) == (4e-4, 12.0, 6e-5)
    assert pong.eval.stop_on_solve and pong.eval.every == 25_000
    trigger = (pong.eval.trigger_episodes, pong.eval.trigger_margin, pong.eval.trigger_gap)
    assert trigger == (10, 4.0, 20_000)
    assert pong.eval.min_episodes == 4  # one game per eval env, then it may stop short
    # solved only if 40 more games at Nature's epsilon average 16: a margin over the 15 wanted
    robust = (pong.eval.robust_epsilon, pong.eval.robust_episodes, pong.eval.robust_threshold)
    assert robust == (0.05, 40, 16.0)
    # the harness's Atari protocol: 20 full games at epsilon 0.01, no sticky actions, 30 no-ops
    protocol = (pong.eval.episodes, pong.eval.epsilon, pong.env.repeat_action_probability)
    assert protocol == (20, 0.01, 0.0) and pong.env.noop_max == 30
    assert pong.env.max_episode_steps is None  # full games
    # the recipe before it, pong_f1: +experiment=pong_nips_robust with the gate's margin
    recorded = plain("+experiment=pong_nips_robust")
    assert recorded["eval"]["robust_threshold"] == 15.0
    f1 = {**recorded, "eval": {**recorded["eval"], "robust_threshold": 16.0}}
    assert f1 == plain("+experiment=pong_f1")
    assert (f1["train_freq"], f1["batch_size"], f1["optim"]["lr"]) == (1, 32, 2e-4)
    for preset in ("+experiment=pong_nature", "env=atari", "env=breakout"):
        cfg = compose_cfg(preset)
        assert (cfg.eval.episodes, cfg.eval.epsilon) == (20, 0.01), preset
        assert cfg.model.name == "nature_cnn" and cfg.eval.trigger_episodes == 0, preset
    assert (classic.algo.n_step, classic.train_freq, classic.trainer.precision) == (1, 4, "32-true")
    assert classic.schedule.epsilon.end == 0.01 and classic.total_steps == 1_000_000
    # the recorded classic run (experiments/README "pong_dqn") still composes to its settings
    dqn = compose_cfg("+experiment=pong_dqn")
    assert (dqn.algo.n_step, dqn.train_freq, dqn.eval.episodes) == (1, 4, 5)
    assert dqn.eval.epsilon == 0.05  # as it was recorded
    # the earlier env=pong presets stay reachable by name, with the Nature CNN
    n10 = compose_cfg("+experiment=pong_n10")
    assert (n10.model.name, n10.algo.n_step, n10.eval.every) == ("nature_cnn", 10, 10_000)
    assert n10.schedule.epsilon.steps == 5_000 and n10.eval.trigger_episodes == 0
    assert n10.optim.lr == 1e-4 and n10.optim.lr_drop_score is None
    assert n10.eval.robust_epsilon is None and n10.env.id == "ALE/Pong-v5"
    # pong_n4 is the fast preset on Pong, as it was
    n4 = plain("+experiment=pong_n4")
    assert n4 == plain("env=atari_fast", "env.id=ALE/Pong-v5")
    # and env=pong differs from it in exactly what the screening chose
    pong_dict = plain("env=pong")
    changed = {
        (section, key)
        for section in pong_dict
        if isinstance(pong_dict[section], dict)
        for key in pong_dict[section]
        if pong_dict[section][key] != n4[section][key]
    } | {k for k in pong_dict if not isinstance(pong_dict[k], dict) and pong_dict[k] != n4[k]}
    assert changed == {
        ("model", "name"),
        ("model", "hidden"),
        ("schedule", "epsilon"),
        ("algo", "target_sync"),
        ("optim", "lr"),
        ("optim", "lr_drop_score"),
        ("optim", "lr_drop_to"),
        ("eval", "trigger_episodes"),
        ("eval", "trigger_margin"),
        ("eval", "min_episodes"),
        ("eval", "robust_epsilon"),
        ("eval", "robust_episodes"),
        ("eval", "robust_threshold"),
        "train_freq",
        "batch_size",
    }, changed


def test_pong_nips_keeps_the_settings_it_was_recorded_with():
    """pong_nips is pong_n10's recipe with the NIPS-2013 network and 4-step returns, evaluated
    as env=pong was when it ran: every 50k and when the training episodes come within 2 of 19,
    every evaluation playing all 20 games."""
    nips = compose_cfg("+experiment=pong_nips")
    assert (nips.model.name, list(nips.model.hidden), nips.algo.n_step) == ("nips_cnn", [256], 4)
    epsilon = nips.schedule.epsilon
    assert (epsilon.start, epsilon.end, epsilon.steps, nips.optim.lr) == (1.0, 0.01, 5_000, 1e-4)
    trigger = (nips.eval.every, nips.eval.trigger_episodes, nips.eval.trigger_margin)
    assert trigger == (50_000, 10, 2.0) and nips.eval.trigger_gap == 20_000
    assert nips.eval.min_episodes is None and nips.eval.robust_epsilon is None
    assert nips.optim.lr_drop_score is None and nips.env.id == "ALE/Pong-v5"


def test_the_nips_presets_differ_from_each_other_in_what_they_say():
    """pong_nips_drop is pong_nips at epsilon 0.05 with the drop and denser evaluations;
    pong_nips_lr2e4 is pong_nips_drop at twice the rate before the drop, its evaluations
    stopping short as env=pong's do."""
    drop, fast = (
        compose_cfg("+experiment=pong_nips_drop"),
        compose_cfg("+experiment=pong_nips_lr2e4"),
    )
    assert (drop.optim.lr, drop.optim.lr_drop_score, drop.optim.lr_drop_to) == (1e-4, 12.0, 3e-5)
    assert (drop.schedule.epsilon.end, drop.eval.every, drop.eval.min_episodes) == (
        0.05,
        25_000,
        None,
    )
    assert (fast.optim.lr, fast.optim.lr_drop_score, fast.optim.lr_drop_to) == (2e-4, 12.0, 3e-5)
    assert fast.eval.min_episodes == 10 and fast.model.name == "nips_cnn"
    same = ("algo", "model", "schedule", "buffer", "env", "trainer")
    assert all(drop[k] == fast[k] for k in same)
    robust = compose_cfg("+experiment=pong_nips_robust")  # pong_nips_lr2e4 with a robust solve
    assert (robust.eval.robust_epsilon, robust.eval.robust_threshold) == (0.05, 15.0)
    assert fast.eval.robust_epsilon is None and fast.eval.robust_threshold is None
    assert all(robust[k] == fast[k] for k in (*same, "optim"))
    assert {**robust.eval, "robust_epsilon": None, "robust_threshold": None} == fast.eval


def test_breakout_is_the_fast_preset_on_another_game_and_atari_stays_classic():
    """env=breakout is the same preset as env=pong had then (today's
    +experiment=pong_n4, the fast preset): only the game differs."""
    pong, breakout = (
        OmegaConf.to_container(compose_cfg(arg), resolve=False)
        for arg in ("+experiment=pong_n4", "env=breakout")
    )
    for cfg in (pong, breakout):
        cfg.pop("run_name")
        cfg.pop("env")
    assert breakout == pong
    cfg = compose_cfg("env=breakout")
    assert (cfg.env.name, cfg.env.id) == ("breakout", "ALE/Breakout-v5")
    any_game = compose_cfg("env=atari_fast", "env.id=ALE/SpaceInvaders-v5")
    assert any_game.env.name == "spaceinvaders" and any_game.algo.n_step == 4
    classic = compose_cfg("env=atari")
    assert (classic.train_freq, classic.buffer.capacity, classic.total_steps) == (4, 10**6, 10**7)


def test_switch_groups_set_their_keys_under_any_env_preset():
    cfg = compose_cfg("env=cartpole", "model=dueling_mlp", "buffer=prioritized")
    assert cfg.model.name == "mlp" and cfg.model.dueling
    assert cfg.buffer.sampler == "prioritized" and cfg.buffer.capacity == 50_000  # env's capacity
    cfg = compose_cfg("env=pong", "+experiment=rainbow_lite")
    assert cfg.model.name == "nips_cnn" and cfg.model.dueling and cfg.algo.n_step == 3
    assert cfg.algo.double and cfg.buffer.sampler == "prioritized"


def test_run_name_pattern():
    cfg = compose_cfg("env=cartpole", "seed=7")
    assert cfg.run_name.startswith("cartpole-dqn-s7-")


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["algo.gamma=1.5"], "algo.gamma"),
        (["algo.gamma=0"], "algo.gamma"),
        (["optim.lr=0"], "optim.lr"),
        (["optim.lr=-0.1"], "optim.lr"),
        (["schedule.epsilon.start=1.2"], "schedule.epsilon.start"),
        (["schedule.epsilon.end=-0.1"], "schedule.epsilon.end"),
        (["eval.epsilon=2"], "eval.epsilon"),
        (["batch_size=512", "buffer.capacity=100"], "batch_size"),
        (["learning_starts=10", "batch_size=64"], "learning_starts"),
        (["env.id=ALE/NoSuchGame-v5"], "env.id"),
        (["env.id=NoSuchEnv-v0"], "env.id"),
        (["env.backend=ale_vector"], "env.backend"),
        (["algo=tabular"], "algo"),
        (["model=nature_cnn"], "model"),
        (["buffer.capacity=100000000", "env=pong"], "buffer.capacity"),
        # env=pong's robust solve is a Pong score: another game is told, not silently ungated
        (["env=pong", "env.id=ALE/Breakout-v5"], "eval.robust_epsilon"),
        (["algo.n_step=0"], "algo.n_step"),
        (["buffer.sampler=rank"], "buffer.sampler"),
        (["buffer=prioritized", "buffer.alpha=1.5"], "buffer.alpha"),
        (["buffer=prioritized", "buffer.beta=-0.1"], "buffer.beta"),
        (["buffer=prioritized", "buffer.eps=0"], "buffer.eps"),
        (["buffer=prioritized", "buffer.beta_steps=0"], "buffer.beta_steps"),
        (["model=dueling_mlp", "model.hidden=[]"], "model.hidden"),
        (["eval.video_every=0"], "eval.video_every"),
        (["trainer.threads=0"], "trainer.threads"),
        (["trainer.precision=16-mixed"], "trainer.precision"),
        (["trainer.precision=bf16-true"], "trainer.precision"),
        (["trainer.precision=64-true"], "trainer.precision"),
        (["trainer.devices=2"], "trainer.devices"),
        (["trainer.accelerator=tpu"], "trainer.accelerator"),
        (["seed=-1"], "seed"),
        (["env.max_episode_steps=0"], "env.max_episode_steps"),
        (["+env.kwargs.no_such_arg=1"], "env.kwargs"),
        (["env=pong", "+env.kwargs.no_such_arg=1"], "env.kwargs"),
        (["algo=tabular", "env=frozenlake", "env.kwargs.map_name=9x9"], "env.kwargs"),
        (["logger=wandb", "logger.mode=online"], "logger.mode"),
        # found by trying inputs as a careless user would (issue 25)
        (["algo.n_step=5000", "buffer.capacity=1000"], "algo.n_step"),  # ran at 13 steps/s
        (
            ["algo=tabular", "env=frozenlake", "env.kwargs.is_slippery=maybe"],
            "env.kwargs.is_slippery",
        ),
        (
            ["algo=tabular", "env=frozenlake", "+env.kwargs.success_rate=lots"],
            "env.kwargs.success_rate",
        ),
        (["algo.augment=crop"], "algo.augment"),
        (["algo.n_step_end=0"], "algo.n_step_end"),
        (["algo.n_step_steps=0", "algo.n_step_end=3"], "algo.n_step_steps"),
        (["algo.n_step_end=5000", "buffer.capacity=1000"], "algo.n_step_end"),
        (["gradient_steps=0"], "gradient_steps"),
    ],
)
def test_validate_names_the_bad_key(overrides, key, monkeypatch):
    if key == "logger.mode":  # no API key anywhere: this is the machine of a user without one
        monkeypatch.delenv("WANDB_MODE", raising=False)
        monkeypatch.delenv("WANDB_API_KEY", raising=False)
        monkeypatch.setenv("NETRC", "/nonexistent")
        monkeypatch.setenv("HOME", "/nonexistent")
    base = [] if any(o.startswith("env=") for o in overrides) else ["env=cartpole"]
    cfg = compose_cfg(*base, *overrides)
    with pytest.raises(UsageError) as info:
        validate(cfg)
    assert info.value.key == key


@pytest.mark.parametrize(
    "args, expected",
    [
        (["no_such_key=1"], "no_such_key"),
        (["optim.lrr=0.1"], "optim.lrr"),
        (["env=atlantis"], "available: atari, atari_fast, breakout, cartpole"),
        (["env.id=ALE/NoSuchGame-v5"], "env.id"),
        (["algo.gamma=1.5"], "algo.gamma"),
        (["optim.lr=-1"], "optim.lr"),
        (["schedule.epsilon.start=1.5"], "schedule.epsilon.start"),
        (["batch_size=256", "buffer.capacity=128"], "batch_size"),
        (["optim.lr=abc"], "optim.lr"),
        (["gradient_steps=1.5"], "gradient_steps"),
        (["+surprise=1"], "surprise"),
        (["seed=-1"], "seed"),
        (["algo=tabular", "env=frozenlake", "env.kwargs.map_name=9x9"], "env.kwargs: FrozenLake"),
    ],
)
def test_cli_rejects_bad_input_without_traceback(tmp_path, args, expected):
    run_dir = tmp_path / "run"
    proc = run_train("env=cartpole", f"hydra.run.dir={run_dir}", *args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr  # the README's promise for bad input
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0]
    assert not run_dir.exists(), "a rejected config must not leave a run dir behind"


def test_cli_rejects_output_dirs_it_cannot_write(tmp_path):
    blocker = tmp_path / "afile"  # a file where a directory must go (root ignores mode bits)
    blocker.write_text("keep me")
    cases = [
        ([f"hydra.run.dir={blocker}/run"], "hydra.run.dir"),
        ([f"hydra.run.dir={tmp_path / 'run'}", f"logger.save_dir={blocker}/wb"], "logger.save_dir"),
    ]
    for args, key in cases:
        proc = run_train("env=cartpole", "logger=wandb", *args, cwd=tmp_path, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert f"error: {key}: cannot create" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert blocker.read_text() == "keep me"
    assert not (tmp_path / "run").exists()


def test_a_gpu_that_is_not_there_is_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    proc = run_train("env=cartpole", "trainer=gpu", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: trainer.accelerator: no CUDA device")
    assert not (tmp_path / "r").exists()


def test_any_ale_game_has_no_borrowed_threshold():
    """env=pong's threshold belongs to Pong: another game trains to total_steps unless told."""
    from dqn_harness.envs import reward_threshold

    cfg = compose_cfg("env=atari", "env.id=ALE/SpaceInvaders-v5")
    assert cfg.env.name == "spaceinvaders" and cfg.run_name.startswith("spaceinvaders-dqn-s0-")
    assert reward_threshold(cfg.env) is None
    assert reward_threshold(compose_cfg("env=pong", "env.id=ALE/Breakout-v5").env) is None
    assert reward_threshold(compose_cfg("env=pong").env) == 19.0
    assert reward_threshold(compose_cfg("env=atari", "env.reward_threshold=300").env) == 300.0


def test_native_bf16_is_read_from_the_cpu_flags():
    from dqn_harness.perf import native_bf16

    assert native_bf16("processor : 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile\n")
    assert native_bf16("flags : fpu amx_bf16 amx_tile\n")
    assert not native_bf16("flags : fpu sse2 avx2 avx512f avx512bw\n")
    assert not native_bf16("")


def test_the_cpu_is_named_with_its_bf16_and_amx_flags_and_kept_across_a_move(tmp_path):
    """Timings are only read beside the CPU they ran on (AMD EPYC with AVX512-BF16 vs Xeon with
    AMX on this project's machines); a run resumed on another machine keeps both names."""
    from dqn_harness.perf import cpu_description
    from dqn_harness.tracking.summary import RunSummary

    xeon = "model name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t: avx512f avx512_bf16 amx_bf16\n"
    epyc = "model name : AMD EPYC\nflags : avx512f avx512_bf16\nmodel name : other\n"
    assert cpu_description(xeon, 2) == "Intel(R) Xeon(R) Platinum 8481C, 2 cores, avx512_bf16, AMX"
    assert cpu_description(epyc, 2) == "AMD EPYC, 2 cores, avx512_bf16, no AMX"
    assert cpu_description("flags : avx2\n", 4).endswith(", 4 cores, no avx512_bf16, no AMX")
    here = cpu_description()
    summary = RunSummary(tmp_path)
    summary.load_state_dict({"episodes": 1, "env_steps": 5, "wall_s": 1.0, "cpus": [here]})
    assert summary.write({})["cpus"] == [here]  # same machine: named once
    summary.load_state_dict({"episodes": 1, "env_steps": 5, "wall_s": 1.0, "cpus": ["elsewhere"]})
    assert summary.state_dict()["cpus"] == ["elsewhere", here]
    summary.load_state_dict({"episodes": 1, "env_steps": 5, "wall_s": 1.0})  # an old checkpoint
    assert summary.write({})["cpus"] == [here]
