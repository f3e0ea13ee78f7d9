"""A trained agent as a self-contained folder others can load: what ``export.py`` writes and
what ``evaluate.py checkpoint=<folder>`` reads back.

The weights are ``safetensors`` (tensors only: loading one runs no code, unlike a pickled
``.pt``), beside the resolved config, the newest evaluation, a model card that says under which
protocol the scores were measured and which command reproduces the run, and a short GIF. The
folder is what the Hugging Face Hub holds as a model repository; ``huggingface_hub`` pushes it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from dqn_harness.errors import UsageError
from dqn_harness.files import write_text_atomic

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
META = "dqn_harness.json"  # agent step, what the tensors are, the tabular RNG
FORMAT = 1


def is_export(path: Path) -> bool:
    return path.is_dir() and (path / WEIGHTS).is_file() and (path / META).is_file()


def write_weights(weights: dict[str, Any], out: Path) -> None:
    """The policy's tensors (the Q-network, or the Q-table's states and values) and what a
    reader needs to rebuild it."""
    from safetensors.torch import save_file

    if "q_net" in weights:
        tensors = {k: v.contiguous() for k, v in weights["q_net"].items()}
        kind, extra = "q_net", {}
    else:
        tensors = {"states": weights["states"], "values": weights["values"]}
        kind, extra = "q_table", {"rng": weights["rng"]}
    save_file(tensors, str(out / WEIGHTS))
    meta = {"format": FORMAT, "kind": kind, "env_steps": int(weights["env_steps"]), **extra}
    write_text_atomic(out / META, json.dumps(meta, indent=1, default=int))
    write_text_atomic(out / CONFIG, json.dumps(shared_config(weights["config"]), indent=1))


def shared_config(config: dict[str, Any]) -> dict[str, Any]:
    """The run's config as others get it: ``resume`` (the directory a resumed piece was
    started from, a path on the trainer's machine) becomes that directory's name."""
    if config.get("resume"):
        return {**config, "resume": Path(str(config["resume"])).name}
    return config


def read_export(path: Path) -> dict[str, Any]:
    """An export folder as the weights dict evaluate.py scores (the shape of a best.pt)."""
    from safetensors.torch import load_file

    try:
        meta = json.loads((path / META).read_text())
        config = json.loads((path / CONFIG).read_text())
        tensors = load_file(str(path / WEIGHTS))
    except (OSError, ValueError) as exc:
        raise UsageError("checkpoint", f"{path} is not a readable export ({exc})") from None
    if meta.get("format") != FORMAT:
        raise UsageError("checkpoint", f"{path}: export format {meta.get('format')} is unknown")
    weights: dict[str, Any] = {"env_steps": meta["env_steps"], "config": config}
    if meta["kind"] == "q_net":
        weights["q_net"] = tensors
    else:
        weights.update(states=tensors["states"], values=tensors["values"], rng=meta["rng"])
    return weights


def newest_evaluation(run_dir: Path) -> dict[str, Any] | None:
    found = sorted(run_dir.glob("eval-*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(found[-1].read_text()) if found else None


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else "?"


def model_card(
    config: dict[str, Any],
    summary: dict[str, Any],
    result: dict[str, Any] | None,
    command: str,
    changes: list[str] | None = None,
) -> str:
    """README.md with the Hub's front matter: what the agent is, how it scored under which
    protocol, the command that trains it again and, for a run resumed with other settings,
    what changed at which agent step (``resume_changes``)."""
    env, algo = config["env"]["id"], config["algo"]["name"]
    protocol = config.get("protocol", {}).get("name", "unrecorded")
    lines = [
        "---",
        "library_name: dqn-harness",
        f"tags: [reinforcement-learning, {algo}, {env.split('/')[-1]}, dqn-harness]",
        "---",
        "",
        f"# {algo} on {env}",
        "",
        f"Trained with dqn-harness for {_count(summary.get('env_steps'))} agent steps "
        f"(run `{config.get('run_name')}`, seed {config.get('seed')}); these weights are its "
        f"checkpoint at agent step {_count(summary.get('weights_step'))}.",
        "",
        f"- Training's evaluation protocol: `{protocol}` ({config['eval']['episodes']} "
        f"episodes at ε {config['eval']['epsilon']}); last evaluation "
        f"{summary.get('eval_return_mean')}, best {summary.get('best_eval_return')}, "
        f"solved: {summary.get('solved')}.",
    ]
    if result is not None:
        low, high = result["return_ci95"]
        lines.append(
            f"- `evaluate.py` ({result.get('protocol', protocol)}): {result['episodes']} "
            f"episodes at ε {result['epsilon']}: mean {result['return_mean']:.2f} "
            f"[95% CI {low:.2f}, {high:.2f}]."
        )
    lines += ["", "Reproduce the run: `" + command + "`"]
    if changes:
        lines += [
            "",
            "The run was resumed with other settings, so that command (which has them from "
            "the start) does not train these weights again:",
            *changes,
        ]
    lines += [
        "",
        "Score this folder: `python evaluate.py checkpoint=<this folder>`",
        "",
        "Files: `model.safetensors` (weights), `config.json` (the resolved config), "
        "`dqn_harness.json` (agent step, format), `eval.json` (the newest evaluate.py result, "
        "if any), `replay.gif` (one episode, unless exported with `video=false`).",
    ]
    return "\n".join(lines) + "\n"


def reproduce_command(run_dir: Path) -> str:
    """The single ``python train.py`` command that trains this run again.

    A job of a ``-m suite=<name>`` grid recorded ``suite=<name>`` beside its own game
    (``env.id=``) and preset; ``suite=`` on one run is refused (a suite is a grid), so the card
    gives the game's own command instead, which is what trained these weights."""
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if not overrides_file.exists():
        return "python train.py (its overrides were not recorded)"
    import yaml

    overrides = [str(o) for o in yaml.safe_load(overrides_file.read_text()) or []]
    owned = ("hydra.", "resume=", "run_name=", "trust_checkpoint=", "suite=", "+suite=")
    kept = [o for o in overrides if not o.startswith(owned)]
    return " ".join(["python train.py", *kept])


def resume_changes(run_dir: Path, weights_step: int | None) -> list[str]:
    """One Markdown bullet per resume before ``weights_step`` that changed a setting: the agent
    step it continued from and each ``key: before -> after`` (``resumes.json``, written by the
    run). A resume after the weights were saved did not train them and is left out."""
    from dqn_harness.run.resume import read_resumes

    bullets = []
    for entry in read_resumes(run_dir):
        changed = entry.get("changed") or {}
        if weights_step is not None and int(entry.get("env_steps", 0)) >= weights_step:
            continue
        if changed:
            parts = ", ".join(f"`{k}` {old!r} → {new!r}" for k, (old, new) in changed.items())
            bullets.append(f"- from agent step {_count(entry.get('env_steps'))}: {parts}")
    return bullets


def export_run(run_dir: Path, checkpoint: Path, weights: dict[str, Any], out: Path) -> list[Path]:
    """Write the folder ``out`` (which must not exist yet); returns the files written."""
    if out.exists():
        raise UsageError("out", f"{out} exists; export into a new folder (nothing was changed)")
    out.mkdir(parents=True)
    try:
        write_weights(weights, out)
        summary_file = run_dir / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
        result = newest_evaluation(run_dir)
        if result is not None:
            write_text_atomic(out / "eval.json", json.dumps(result, indent=2))
        summary = {**summary, "weights_step": weights.get("env_steps")}
        card = model_card(
            weights["config"],
            summary,
            result,
            reproduce_command(run_dir),
            resume_changes(run_dir, weights.get("env_steps")),
        )
        write_text_atomic(out / "README.md", card)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # no half-written export left behind
        raise
    return sorted(out.iterdir())


def upload_plan(out: Path, repo_id: str) -> dict[str, Any]:
    """What a push would send, checked without the network: the repository id (the Hub's own
    rules, ``validate_repo_id``), the files of the folder, and the model card's metadata as the
    Hub reads it (``ModelCard``: front matter with ``library_name`` and tags)."""
    from huggingface_hub import ModelCard
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise UsageError("repo_id", str(exc).strip().splitlines()[0][:200]) from None
    if "/" not in repo_id:
        raise UsageError("repo_id", f"'{repo_id}' needs an owner: <user or org>/<name>")
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    card = ModelCard.load(out / "README.md")
    return {"repo_id": repo_id, "files": files, "card": card.data.to_dict()}


def push(out: Path, repo_id: str) -> str:
    """Upload the folder as a Hub model repository; a one-line UsageError (the folder kept)
    when the id is malformed, or there is no token, no network, or the Hub refuses."""
    from huggingface_hub import HfApi

    plan = upload_plan(out, repo_id)
    api = HfApi()
    try:
        api.whoami()
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        info = api.upload_folder(
            folder_path=str(out), repo_id=repo_id, repo_type="model", allow_patterns=plan["files"]
        )
    except Exception as exc:  # noqa: BLE001 (no token, offline, refused: all one line)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            "repo_id", f"could not push to {repo_id} ({reason[:160]}); the export is kept in {out}"
        ) from None
    return str(getattr(info, "commit_url", repo_id))
