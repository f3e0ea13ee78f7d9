"""A study's results: the report people read, the plots they look at, the preset they run next.

The preset is a Hydra experiment file kept with the study (``<out>/<study>/experiment/
<study>_best.yaml``, which ``+experiment=`` finds there), so the best trial is re-run with
``python train.py +experiment=<study>_best`` and no copying of numbers by hand. Only
``export=true`` writes it into ``experiments/``, whose presets the repository records results
for: a user's sweep never silently replaces one.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.trial import FrozenTrial, TrialState

from dqn_harness.files import write_text_atomic
from dqn_harness.sweeping.spec import format_param
from dqn_harness.tracking.summary import SUMMARY_FIELDS

if TYPE_CHECKING:
    from dqn_harness.sweeping.spec import Plan

# How a run is watched, not what it trains: left out of the preset.
OPERATIONAL = ("logger", "progress", "hydra", "run_name")


def importances(study: optuna.Study) -> dict[str, float]:
    """Parameter importances (Optuna's default PED-ANOVA); empty until they can be computed."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if len(complete) < 2 or len({t.value for t in complete}) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError):
        return {}


def preset_yaml(plan: Plan, best: FrozenTrial) -> str:
    """The trial's overrides and best parameters as a ``# @package _global_`` experiment."""
    groups: dict[str, str] = {}
    values: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if (plan.paths.conf / key).is_dir():
            groups[key] = str(value)
            return
        node = values
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value

    for override in OverridesParser.create().parse_overrides(plan.overrides):
        if override.is_delete() or override.key_or_group.split(".")[0] in OPERATIONAL:
            continue
        put(override.key_or_group, override.value())
    for key in plan.spec.space:
        put(key, _param_value(best.params[key]) if key in best.params else None)
    study = plan.spec.study
    obj = plan.spec.objective
    what = obj.metric if obj.metric in SUMMARY_FIELDS else f"{obj.reduce} {obj.metric}"
    header = [
        "# @package _global_",
        f"# Best trial of study '{study}': trial {best.number}, {obj.aggregate} {what} over "
        f"seeds {list(obj.seeds)} = {best.value:.6g}.",
        " ".join(["# Written by: python sweep.py", f"sweep={plan.spec.sweep}", *plan.train_args]),
        f"# Run it with: python train.py +experiment={study}_best",
    ]
    body: dict[str, Any] = {}
    if groups:
        body["defaults"] = [{f"override /{g}": v} for g, v in groups.items()]
    body.update(values)
    return "\n".join(header) + "\n" + yaml.safe_dump(body, sort_keys=False)


def _param_value(value: Any) -> Any:
    """Categorical lists were stored as JSON text (see sweeping.suggest)."""
    if isinstance(value, str) and value.startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def plot_study(study: optuna.Study, out: Path, weights: dict[str, float]) -> list[Path]:
    """sweep.png: the objective per trial, the best so far, and parameter importances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = study.get_trials(deepcopy=False)
    maximize = study.direction.name.lower() == "maximize"
    fig, axes = plt.subplots(1, 2 if weights else 1, figsize=(11 if weights else 6, 4))
    ax = axes[0] if weights else axes
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    ax.scatter([t.number for t in done], [t.value for t in done], s=16, label="complete")
    best, best_line = None, []
    for t in sorted(done, key=lambda t: t.number):
        assert t.value is not None
        if best is None or (t.value > best if maximize else t.value < best):
            best = t.value
        best_line.append((t.number, best))
    if best_line:
        ax.step(*zip(*best_line, strict=True), where="post", color="C1", label="best so far")
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    if pruned:
        ax.scatter(
            [t.number for t in pruned],
            [0.0] * len(pruned),
            marker="x",
            color="C3",
            s=16,
            label="pruned",
        )
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.set_title(study.study_name)
    ax.legend(loc="best", fontsize=8)
    if weights:
        names = list(weights)[::-1]
        axes[1].barh(names, [weights[n] for n in names])
        axes[1].set_xlabel("importance")
        axes[1].set_title("parameter importance")
    fig.tight_layout()
    path = out / "sweep.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def write_report(study: optuna.Study, plan: Plan) -> str:
    """Print-ready text; also writes report.md, report.json, sweep.png and the preset."""
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"study {study.study_name}: {len(trials)} trials — "
        + ", ".join(f"{n} {k}" for k, n in counts.items() if n),
    ]
    report: dict[str, Any] = {"study": study.study_name, "counts": counts, "trials": len(trials)}
    if any(t.state == TrialState.COMPLETE for t in trials):
        lines += report_best(study, plan, report)
    else:
        lines.append("no complete trial yet")
    text = "\n".join(lines)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "report.md").write_text(
        f"# Sweep {study.study_name}\n\n```\n{text}\n```\n\n"
        + "| trial | state | value | params |\n|---|---|---|---|\n"
        + "".join(
            f"| {t.number} | {t.state.name.lower()} | "
            f"{'' if t.value is None else f'{t.value:.6g}'} | "
            f"{', '.join(f'{k}={format_param(v)}' for k, v in t.params.items())} |\n"
            for t in trials
        )
    )
    lines.append(f"report: {out / 'report.md'}")
    return "\n".join(lines)


def report_best(study: optuna.Study, plan: Plan, report: dict[str, Any]) -> list[str]:
    """The best trial's lines; writes its preset and the plot, and fills ``report``."""
    out = plan.out
    best = study.best_trial
    weights = importances(study)
    lines = [
        f"best: trial {best.number}, {plan.spec.objective.metric} = {best.value:.6g} "
        f"({plan.spec.objective.direction})"
    ]
    lines += [f"  {k} = {format_param(v)}" for k, v in best.params.items()]
    if weights:
        lines.append("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in weights.items()))
    name = f"{study.study_name}_best"
    preset = write_preset(plan, best, name)
    pngs = plot_study(study, out, weights)
    lines.append(f"preset: {preset}  (python train.py +experiment={name})")
    recorded = plan.paths.presets / f"{name}.yaml"
    if not plan.spec.export and recorded.exists():
        lines.append(
            f"  note: {recorded} (recorded) is kept and is what +experiment={name} runs; "
            f"this study's: +experiment={name} hydra.searchpath=[file://{out.absolute()}], "
            "or export=true to replace the recorded one"
        )
    lines.append(f"plot: {pngs[0]}")
    report.update(
        best_trial=best.number,
        best_value=best.value,
        best_params=best.params,
        importances=weights,
        preset=str(preset),
        objective=plan.spec.objective.metric,
        direction=plan.spec.objective.direction,
    )
    return lines


def write_preset(plan: Plan, best: FrozenTrial, name: str) -> Path:
    """The preset kept with the study; with ``export=true`` also over the recorded one."""
    preset = plan.out / "experiment" / f"{name}.yaml"
    preset.parent.mkdir(parents=True, exist_ok=True)
    text = preset_yaml(plan, best)
    write_text_atomic(preset, text)
    if not plan.spec.export:
        return preset
    recorded = plan.paths.presets / f"{name}.yaml"
    recorded.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(recorded, text)
    return recorded
