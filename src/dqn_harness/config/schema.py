"""The config schema: every key a run reads, its type, its default and, for a choice, the values
allowed. The allowed values are written here once: :func:`one_of` keeps them in the field's
metadata, and both composition (``compose.py``, which rejects a bad choice with the key named)
and the checks (``checks.py``) read them from there through :func:`choices`.

The dataclasses are registered in Hydra's ConfigStore as the base of ``conf/config.yaml``, so an
unknown key or a value of the wrong type is rejected by Hydra while composing, before anything
runs. (OmegaConf 2.3 has no ``Literal`` fields, and ``Enum`` fields would hand every reader an
enum member instead of the string the YAML says, so a choice is a ``str`` with its options.)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from omegaconf import MISSING


def one_of(default: str, *options: str) -> Any:
    """A string field that takes one of ``options`` (``default`` first among them)."""
    assert default in options or default is MISSING
    return field(default=default, metadata={"choices": options})


@dataclass
class EnvConfig:
    name: str = MISSING  # short name used in run names and W&B groups
    id: str = MISSING  # gymnasium id, e.g. ALE/Pong-v5 or CartPole-v1
    backend: str = one_of("gymnasium", "gymnasium", "ale_vector")  # ale_vector: C++ threads
    num_envs: int = 1  # parallel envs stepped together; each step is num_envs agent steps
    # Atari: full (whole screen to 84x84) | seed_crop (84x110, rows 18-101)
    frame: str = one_of("full", "full", "seed_crop")
    frame_skip: int = 4  # Atari: emulator frames per agent step (max-pooled over the last two)
    frame_stack: int = 4  # Atari: frames per observation, channels first
    noop_max: int = 30  # Atari: random no-ops after reset
    fire_reset: bool = True  # Atari: press FIRE after reset in games that need it
    repeat_action_probability: float = 0.0  # Atari sticky actions (0 = classic DQN setting)
    max_episode_steps: int | None = None  # cap on agent steps per episode (None = env default)
    # Atari: emulator frames per episode at most (ALE's name; None: ALE's 108,000, 30 minutes)
    max_num_frames_per_episode: int | None = None
    full_action_space: bool = False  # Atari: all 18 actions instead of the game's minimal set
    # Atari: a lost life ends a training episode (the game goes on; evaluation plays whole games)
    terminal_on_life_loss: bool = False
    reward_threshold: float | None = None  # return that counts as solved (None = env spec's)
    # the best return one episode can score (None: the known one for the game, Pong's 21; else
    # unknown): with eval.min_episodes, what tells an evaluation that it can no longer solve
    max_return: float | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra gym.make arguments


@dataclass
class AlgoConfig:
    name: str = one_of("dqn", "dqn", "tabular")  # the learner (set by algo=)
    gamma: float = 0.99  # discount
    alpha: float = 0.1  # tabular: TD step size
    # tabular: epsilon (follow the schedule) | random (the seed's way)
    explore: str = one_of("epsilon", "epsilon", "random")
    loss: str = one_of("huber", "huber", "mse")  # dqn
    reward_clip: bool = False  # dqn: train on sign(r); logged returns stay unclipped
    max_grad_norm: float | None = 10.0  # dqn: clip gradient norm (None = off)
    double: bool = False  # dqn: Double DQN (online net picks the next action, target net values it)
    n_step: int = 1  # dqn: n-step returns (windows stop at episode ends; bootstrap with gamma^m)
    # dqn: anneal n from n_step to n_step_end over n_step_steps agent steps from learning_starts,
    # geometrically (BBF's receding update horizon, 10 -> 3); None keeps n fixed
    n_step_end: int | None = None
    n_step_steps: int = 10000  # dqn: agent steps over which n anneals (with n_step_end)
    # dqn: agent steps between hard copies of the online net into the target (SB3's
    # target_update_interval, Dopamine's target_update_period)
    target_sync: int = 1000
    # dqn: none | shift (DrQ's random shift of Atari frames by up to 4 pixels, per sample)
    augment: str = one_of("none", "none", "shift")


@dataclass
class ModelConfig:
    name: str = one_of("nature_cnn", "nature_cnn", "nips_cnn", "mlp")  # nips_cnn: Mnih et al. 2013
    hidden: list[int] = field(default_factory=lambda: [512])  # dense widths after the trunk
    dueling: bool = False  # value + advantage streams (model=dueling_cnn / dueling_mlp)
    # your own network class, e.g. my_pkg.nets.MyNet, built as
    # cls(obs_space=..., n_actions=..., hidden=..., dueling=...) instead of `name`'s
    _target_: str | None = None


@dataclass
class OptimConfig:
    lr: float = 1e-4  # Adam learning rate
    eps: float = 1.5e-4  # Adam epsilon
    # Adam learning rate at agent step lr_steps, reached linearly from lr at learning_starts
    # (None: lr throughout): a smaller step late steadies a policy that oscillates
    lr_end: float | None = None
    lr_steps: int | None = None  # agent step at which lr_end is reached (None: total_steps)
    # Adam learning rate lr_drop_to from the first evaluation whose mean return is at least
    # lr_drop_score (None: no drop): the smaller step comes when the run plays well, whenever
    # its seed gets there; set both, and not with lr_end
    lr_drop_score: float | None = None
    lr_drop_to: float | None = None  # Adam learning rate after the drop (with lr_drop_score)
    fused: bool = True  # one fused Adam kernel (CPU step 0.5 ms vs 2 ms for the per-tensor loop)


@dataclass
class EpsilonConfig:
    kind: str = one_of("linear", "linear", "exponential")  # shape of the decay
    start: float = 1.0  # epsilon at agent step 0
    end: float = 0.01  # epsilon from `steps` on
    steps: int = 100_000  # agent steps from start to end (exponential: to within 1% of end)


@dataclass
class ScheduleConfig:
    """Exploration only: choosing a schedule changes nothing else (the target sync is algo's)."""

    name: str = "atari"  # the schedule preset (schedule=) this came from
    epsilon: EpsilonConfig = field(default_factory=EpsilonConfig)


@dataclass
class BufferConfig:
    capacity: int = 100_000  # transitions kept (frames are stored once each)
    # uniform | prioritized (sum-tree sampler over the same storage)
    sampler: str = one_of("uniform", "uniform", "prioritized")
    alpha: float = 0.6  # prioritized: how strongly priorities skew sampling (0 = uniform)
    beta: float = 0.4  # prioritized: importance-sampling exponent at the start, annealed to 1
    beta_steps: int | None = None  # prioritized: agent steps to reach beta 1 (None = total_steps)
    eps: float = 1.0e-6  # prioritized: added to |TD error| so no transition gets priority 0


@dataclass
class LoggerConfig:
    name: str = one_of("wandb", "wandb", "tensorboard", "csv", "none")  # where metrics go
    project: str = "dqn-harness"  # wandb: the project runs go to
    entity: str | None = None  # wandb: the team or user (None: your default entity)
    # wandb: auto (online when an API key is configured) | online | offline
    mode: str = one_of("auto", "auto", "online", "offline")
    group: str | None = None  # defaults to the env name
    tags: list[str] = field(default_factory=list)  # wandb: tags added to the env and algo
    job_type: str = one_of("train", "train", "trial", "eval")  # trial: set by sweeps
    save_dir: str = "."  # wandb/ goes under here (tensorboard and csv logs go in the run dir)
    every: int = 1000  # agent steps between scalar logs (epsilon, loss, q, sps)
    # wandb: checkpoints as W&B Artifacts of the run: best (each new best.pt), last (the final
    # last.pt), all (every best.pt and last.pt written) or false; offline, `wandb sync` uploads
    log_model: str = one_of("false", "false", "best", "last", "all")


@dataclass
class TrainerConfig:
    accelerator: str = one_of("cpu", "cpu", "gpu")  # gpu: one CUDA device
    devices: int = 1  # one device: the replay and the envs live in the training process
    # 32-true | bf16-mixed (bf16 matrix work under autocast; fp32 weights, TD target and loss;
    # on a CPU without native bf16 it falls back to 32-true with a warning)
    precision: str = one_of("32-true", "32-true", "bf16-mixed")
    channels_last: bool = False  # NHWC convolutions (oneDNN on CPU: ~13% faster Nature-CNN updates)
    threads: int | None = None  # torch CPU threads (None: 1 for mlp/tabular, torch's default else)
    # subnormal floats read and written as zero on CPU (FTZ/DAZ): dead units' Adam moments decay
    # through the subnormal range, where x86 is ~100x slower (perf.flush_denormals)
    flush_denormal: bool = True


@dataclass
class EvalConfig:
    every: int = 50_000  # agent steps between evaluations
    episodes: int = 10  # episodes per evaluation (Atari presets: 20 whole games)
    epsilon: float = 0.05  # exploration while evaluating (Atari presets: 0.01)
    num_envs: int = 1  # eval envs stepped together (episodes split evenly; at most episodes)
    stop_on_solve: bool = True  # end training once the eval mean reaches the reward threshold
    video: bool = False  # film one episode (GIF in <run dir>/videos, W&B key eval/video)
    video_every: int = 5  # evaluations between videos (the first evaluation is always filmed)
    # An evaluation called early by the training episodes (0: off): when the mean return of the
    # last trigger_episodes training episodes is within trigger_margin of the solve threshold
    # and trigger_gap agent steps have passed since the last evaluation; an evaluation still
    # decides solved, and `every` remains the cadence for the curves (one of its evaluations
    # less than trigger_gap after a called one is skipped)
    trigger_episodes: int = 0
    trigger_margin: float = 1.0  # how close to the threshold that mean must come
    trigger_gap: int = 20_000  # agent steps at least between an evaluation and one it calls
    # Games an evaluation plays at least before it may stop short, and between its later looks
    # (None: it plays them all): it stops after any such lot once even env.max_return in every
    # game left could not bring the mean up to the solve threshold, so the solve decision is
    # the same and a far-off agent costs less. One game per eval env shares each lot evenly
    min_episodes: int | None = None
    # A second test of an evaluation that reaches the solve threshold (None: none):
    # robust_episodes more games at robust_epsilon must average robust_threshold or more before
    # the run counts as solved, so that "solved" is a policy that a few random actions do not
    # break (Nature's epsilon 0.05), not one narrow line of play; until then training goes on
    robust_epsilon: float | None = None  # exploration in those games (Nature's 0.05)
    robust_threshold: float | None = None  # the mean those games must reach to solve
    robust_episodes: int | None = None  # how many (None: as many as `episodes`)


@dataclass
class ProtocolConfig:
    """Which evaluation protocol the run follows (``protocol=``): recorded by name in
    config.json, W&B and every eval-*.json; the keys it sets live in env.* and eval.*."""

    name: str = "preset"  # preset | harness | nature | machado | atari100k | legacy


@dataclass
class SuiteConfig:
    """The game suite a run belongs to (``-m suite=atari5``): which games the grid ran."""

    name: str = "none"  # the suite (suite=): none, or atari5 under -m
    preset: str = "atari_fast"  # the env preset every game of the suite trains with
    games: list[str] = field(default_factory=list)  # gymnasium ids, e.g. ALE/Qbert-v5


@dataclass
class CheckpointConfig:
    every: int = 50_000  # agent steps between resumable checkpoints (also written on exit)
    buffer: bool = True  # include the replay buffer (false: a resumed run refills it first)


@dataclass
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    suite: SuiteConfig = field(default_factory=SuiteConfig)
    resume: str | None = None  # a run dir to continue from its checkpoint, or auto (README)
    # resume= from a state.pt that holds more than tensors and plain data (an older harness's):
    # loading it runs code from the file, so only for a file you trust; never inherited
    trust_checkpoint: bool = False
    seed: int = 0  # seeds Python, NumPy, torch and the envs (evaluation adds offsets)
    total_steps: int = 1_000_000  # agent env steps (an Atari agent step is frame_skip frames)
    batch_size: int = 32  # transitions per gradient step
    learning_starts: int = 10_000  # agent steps of pure collection before the first update
    train_freq: int = 4  # agent steps between updates
    gradient_steps: int = 1  # gradient steps per update (replay ratio: gradient_steps/train_freq)
    run_name: str = MISSING  # {env}-{algo}-s{seed}-{timestamp}
    progress: bool = True  # progress bar on stderr


# Keys that moved, and where to: a config or a checkpoint that still uses the old name is
# refused in one line that names the new one (not a bare "unknown key").
MOVED_KEYS = {"schedule.target_sync": "algo.target_sync"}


def choices(node: type = Config, prefix: str = "") -> dict[str, tuple[str, ...]]:
    """Every choice field's dotted key and its allowed values, read from the schema."""
    found: dict[str, tuple[str, ...]] = {}
    for f in fields(node):
        key = f"{prefix}{f.name}"
        if "choices" in f.metadata:
            found[key] = tuple(f.metadata["choices"])
        sub = f.default_factory() if callable(f.default_factory) else None
        if is_dataclass(sub):
            found.update(choices(type(sub), f"{key}."))
    return found
