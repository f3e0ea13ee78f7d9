"""The documentation stays true to the code.

- Every command shown in README.md and docs/ (``python train.py ...``, ``evaluate.py``,
  ``sweep.py``, ``compare.py``, ``export.py``) is checked the way the command itself checks its
  arguments, without running a training: train.py's config must compose (an unknown preset or
  key, a wrong type, a choice outside its values fail), the other tools' own argument checks
  must pass. A renamed key or preset in the docs then fails here; a deliberately broken
  command is shown failing below.
- The configuration reference is generated from the schema, and every key in it has a meaning.
- README.md stays a front door: at most 200 lines, no issue numbers.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dqn_harness.config import compose_config, register_configs, with_sweep_presets
from dqn_harness.errors import UsageError
from tests.conftest import CONF, ROOT

TOOLS = ("train.py", "evaluate.py", "sweep.py", "compare.py", "export.py")
COMMAND = re.compile(r"^(?:\$\s+)?(?:\.venv/bin/)?python\s+(" + "|".join(TOOLS) + r")\b(.*)$")


def documented_commands(text: str, source: str) -> list[tuple[str, str, list[str]]]:
    """(where, tool, arguments) of every command in the shell code blocks of a markdown text.

    Commands in ``text`` blocks are left out: those show refusals on purpose (``$ python
    train.py env=atlantis`` followed by its error line). A trailing ``# comment`` is dropped and
    backslash continuations are joined.
    """
    found = []
    block: str | None = None
    pending = ""
    for number, line in enumerate(text.splitlines(), start=1):
        fence = line.strip()
        if fence.startswith("```"):
            block = None if block is not None else (fence[3:].strip() or "sh")
            continue
        if block is None or block == "text":
            continue
        line = pending + line.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        match = COMMAND.match(line)
        if not match:
            continue
        args = shlex.split(match.group(2), comments=True)
        found.append((f"{source}:{number}", match.group(1), args))
    return found


def is_placeholder(arg: str) -> bool:
    """An argument that stands for the reader's own value: a run dir of theirs, ``<...>``."""
    return "..." in arg or "<" in arg or "$" in arg


def check_train(args: list[str]) -> None:
    """Compose each job's config as train.py's preflight does (without validating it, which
    would build envs and check W&B credentials): presets, keys, types and choices."""
    from dqn_harness.commands.multirun import expand

    if "--cfg" in args:  # --cfg job / hydra / all: Hydra prints the config instead of running
        i = args.index("--cfg")
        args = args[:i] + args[i + 2 :]
    flags = [a for a in args if a.startswith("-")]
    overrides = [
        a
        for a in args
        if not a.startswith("-")
        and not (a.startswith("resume=") and a != "resume=auto")  # a run dir of the reader's
        and not a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))
    ]
    if any(is_placeholder(a) for a in overrides):
        overrides = [a for a in overrides if not is_placeholder(a)]
    jobs = expand(overrides) if "-m" in flags else [overrides]
    for job in jobs:
        job = [o for o in job if o != "resume=auto"]
        if any(o.startswith("suite=") and o != "suite=none" for o in job):
            from dqn_harness.commands.suites import expand_suite

            job = [a for a in expand_suite(CONF, job, multirun=True) if not a.startswith("-")]
            job = expand(job)[0]
        compose_config(CONF, with_sweep_presets(CONF, job))


def check_evaluate(args: list[str]) -> None:
    from dqn_harness.arguments import bool_option
    from dqn_harness.commands.evaluate import evaluate_options, protocol_from

    options, env = evaluate_options(args)
    protocol_from(options, env)
    bool_option(options, "trust_checkpoint")


def check_export(args: list[str]) -> None:
    from dqn_harness.commands.export import export_options

    export_options(args)


def check_sweep(args: list[str]) -> None:
    from dqn_harness.sweeping.spec import Paths, load_spec

    paths = Paths(ROOT / "conf", ROOT / "sweeps", ROOT / "experiments")
    spec, train_args = load_spec([a for a in args if not is_placeholder(a)], paths)
    compose_config(CONF, [*spec.base, *train_args])


def check_compare(args: list[str]) -> None:
    """compare.py's own option checks, and every config-key filter a key runs are logged with."""
    from dqn_harness.comparing.comparison import _budget, compare_options
    from dqn_harness.config.reference import keys

    _, values, options = compare_options(args)
    _budget(options)
    known = {k.key for k in keys()}
    for key in values:
        if key not in known and not key.startswith("sweep."):
            raise UsageError(key, "no config key of that name")


CHECKS = {
    "train.py": check_train,
    "evaluate.py": check_evaluate,
    "export.py": check_export,
    "sweep.py": check_sweep,
    "compare.py": check_compare,
}


def check(tool: str, args: list[str]) -> None:
    CHECKS[tool](args)


def all_commands() -> list[tuple[str, str, list[str]]]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    out = []
    for page in pages:
        out += documented_commands(page.read_text(), str(page.relative_to(ROOT)))
    return out


def test_the_docs_show_commands_of_every_tool():
    tools = {tool for _, tool, _ in all_commands()}
    assert tools == set(TOOLS), tools
    assert len(all_commands()) > 60


def test_every_command_in_the_readme_and_the_docs_composes():
    register_configs()
    failures = []
    for where, tool, args in all_commands():
        try:
            check(tool, args)
        except UsageError as exc:
            failures.append(f"{where}: python {tool} {' '.join(args)}\n    error: {exc}")
    assert not failures, "\n".join(failures)


BROKEN = """
```bash
python train.py env=pong optim.lr=2e-4          # fine
python train.py env=pongg                       # a preset that does not exist
python train.py env=cartpole algo.targett_sync=500
python train.py env=cartpole \\
  model=nature_cnnn
python evaluate.py run=outputs/x episodez=3
python export.py run=outputs/x out=y videos=false
python sweep.py sweep=cartpole_dqnn
python compare.py env=pong optim.lrr=1e-4
```

```text
$ python train.py env=atlantis                  # an error shown on purpose: not checked
```
"""


@pytest.mark.parametrize(
    ("index", "key"),
    [
        (1, "env"),
        (2, "algo.targett_sync"),
        (3, "model"),
        (4, "episodez"),
        (5, "videos"),
        (6, "sweep"),
        (7, "optim.lrr"),
    ],
)
def test_a_broken_command_fails_the_check(index, key):
    register_configs()
    commands = documented_commands(BROKEN, "BROKEN")
    assert len(commands) == 8  # the text block's refusal is not a command to check
    check(*commands[0][1:])  # the good one passes
    _, tool, args = commands[index]
    with pytest.raises(UsageError) as caught:
        check(tool, args)
    assert key in str(caught.value), caught.value


def test_the_configuration_reference_is_generated_from_the_schema_and_means_something():
    from dqn_harness.config.reference import config_reference, keys

    listed = keys()
    assert len(listed) > 80
    missing = [k.key for k in listed if not k.meaning]
    assert not missing, f"schema fields without a comment to document them: {missing}"
    page = config_reference(CONF)
    for k in listed:
        assert f"| `{k.key}` |" in page, k.key
    assert "`nips_cnn`" in page  # allowed values come from the schema's choices
    assert "| `algo.n_step` | `int` | 1 |" in page  # type and default


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert not re.search(r"\bissue[ -]?\d+", text, re.IGNORECASE)
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text)  # no dates
    for page in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / page).is_file(), page  # links into the docs lead somewhere


def test_recorded_results_name_runs_by_folder_not_by_a_machine_path():
    offenders = []
    for path in (ROOT / "experiments").rglob("*"):
        if path.suffix in (".md", ".csv", ".json", ".yaml", ".txt") and path.is_file():
            text = path.read_text(errors="replace")
            if re.search(r"/(?:work|root|home|tmp)/[\w.-]+/", text):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def test_docs_pages_are_all_in_the_site_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").rglob("*.md"):
        rel = page.relative_to(ROOT / "docs").as_posix()
        assert rel in nav, rel
    assert "reference/configuration.md" in nav  # generated by docs/hooks.py
    assert Path(ROOT / "docs" / "hooks.py").is_file()
