"""export.py: a trained agent as a folder others load (safetensors, config, card, GIF), scored
back by evaluate.py to the same returns, and a push that fails offline in one line."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, run_train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    proc = run_train(
        "env=cartpole",
        "total_steps=2000",
        "eval.every=1000",
        "learning_starts=500",
        "algo.target_sync=600",  # evaluations at 1,000 and 2,000, 400 steps past a sync
        "logger=none",
        "progress=false",
        "hydra.run.dir=run",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root


def scored(root, *args):
    proc = run_cli("evaluate.py", *args, "episodes=6", "seed=11", "logger=none", cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = [line for line in proc.stdout.splitlines() if line.startswith("written: ")]
    return json.loads(open(out[0].split(": ", 1)[1]).read())


def test_an_export_scores_exactly_as_its_checkpoint(trained):
    import torch
    from safetensors.torch import load_file

    from dqn_harness.commands.train import preflight
    from tests.conftest import CONF

    best = torch.load(trained / "run" / "checkpoints" / "best.pt", weights_only=True)
    online, target = best["q_net"], best["target_net"]
    assert any(not torch.equal(online[k], target[k]) for k in online)  # the nets differ here
    first = scored(trained, "run=run")  # an evaluate.py result for the export to carry
    proc = run_cli("export.py", "run=run", "out=exported", cwd=trained)
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = trained / "exported"
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "dqn_harness.json", "README.md"} <= names
    assert (folder / "replay.gif").stat().st_size > 1000
    # the exported tensors are best.pt's online network, exactly (not the target's)
    tensors = load_file(str(folder / "model.safetensors"))
    assert set(tensors) == set(online)
    assert all(torch.equal(tensors[k], online[k]) for k in online)
    assert json.loads((folder / "eval.json").read_text()) == first  # the newest result
    config = json.loads((folder / "config.json").read_text())
    assert config["env"]["id"] == "CartPole-v1" and config["protocol"]["name"] == "preset"
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: dqn-harness") and "`preset`" in card
    # how to train it again: the run's own command line, which train.py accepts as it is
    [line] = [ln for ln in card.splitlines() if ln.startswith("Reproduce the run: `")]
    command = line.split("`")[1]
    assert command == (
        "python train.py env=cartpole total_steps=2000 eval.every=1000 learning_starts=500 "
        "algo.target_sync=600 logger=none progress=false"
    )
    preflight(CONF, command.split()[2:])
    # the card says which step the weights are from: the step of the evaluation that chose
    # them, as the run logged it (not the collector's step, one batch on)
    step = best["env_steps"]
    logged = [
        json.loads(line)["env_steps"]
        for line in (trained / "run" / "metrics.jsonl").read_text().splitlines()
        if "eval/return_mean" in line
    ]
    assert step in logged and step % 1000 == 0, (step, logged)
    assert "for 2,000 agent steps" in card and f"checkpoint at agent step {step:,}." in card
    assert f"mean {first['return_mean']:.2f}" in card
    # the round trip: the folder plays the same episodes as the run's best.pt
    again = scored(trained, f"checkpoint={folder}")
    assert again["returns"] == first["returns"] and again["checkpoint_env_steps"] == step
    assert list(folder.glob("eval-exported-*.json"))  # the folder keeps its own results


def test_a_run_resumed_with_other_settings_says_so_in_its_card(tmp_path):
    """A run trained to 1,000 at lr 1e-3, then resumed with optim.lr=5e-4 to 2,000: the merged
    command line alone would claim 5e-4 from the start, so resumes.json records what the
    resume changed and at which agent step, and the card of weights trained after it says so.
    A resume that changed nothing adds an entry with no changes and no line on the card."""
    common = ("env=cartpole", "learning_starts=300", "eval.every=500", "logger=none")
    first = run_train(
        *common, "total_steps=1000", "progress=false", "hydra.run.dir=run", cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert not (tmp_path / "run" / "resumes.json").exists()  # never resumed
    again = run_train("resume=run", "optim.lr=5e-4", "total_steps=2000", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    history = json.loads((tmp_path / "run" / "resumes.json").read_text())
    assert history == [
        {
            "env_steps": 1000,
            "changed": {"optim.lr": [0.001, 0.0005], "total_steps": [1000, 2000]},
        }
    ]
    proc = run_cli("export.py", "run=run", "checkpoint=last", "out=exported", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = (tmp_path / "exported" / "README.md").read_text()
    assert "resumed with other settings" in card
    shared = (tmp_path / "exported" / "config.json").read_text()
    assert json.loads(shared)["resume"] == "run" and str(tmp_path) not in shared  # no machine path
    assert "- from agent step 1,000: `optim.lr` 0.001 → 0.0005, `total_steps` 1000 → 2000" in card
    # the merged command gives each key once, with the value the resume set
    command = card.split("Reproduce the run: `")[1].split("`")[0]
    assert command.count("total_steps=") == 1 and "total_steps=2000" in command, command
    assert command.count("progress=false") == 1, command
    # the same weights' card again after a resume that changed nothing: one more entry, no line
    same = run_train("resume=run", cwd=tmp_path)
    assert same.returncode == 0, same.stderr[-2000:]
    history = json.loads((tmp_path / "run" / "resumes.json").read_text())
    assert len(history) == 2 and history[1]["changed"] == {}, history


def test_a_suite_jobs_card_gives_a_command_that_runs(tmp_path):
    """A job of `-m suite=atari5` recorded `suite=atari5` beside its game; the card's command
    must be one train.py accepts for a single run (suite= alone is refused: it is a grid)."""
    import yaml

    from dqn_harness.commands.train import preflight
    from dqn_harness.errors import UsageError
    from dqn_harness.scoring.export import reproduce_command
    from tests.conftest import CONF

    job = tmp_path / "job"
    (job / ".hydra").mkdir(parents=True)
    recorded = ["suite=atari5", "seed=1", "env=atari_fast", "env.id=ALE/Qbert-v5"]
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(recorded))
    command = reproduce_command(job)
    assert command == "python train.py seed=1 env=atari_fast env.id=ALE/Qbert-v5"
    preflight(CONF, command.split()[2:])  # accepted as one run
    with pytest.raises(UsageError, match="run it with -m"):
        preflight(CONF, recorded)  # what the card said before: refused


def test_export_refuses_an_existing_folder_and_a_push_offline_keeps_the_folder(trained):
    """Everything up to the network is real: the export, the repository id checked by the
    Hub's own rules, the files the upload is handed, and the card's metadata as the Hub's
    ModelCard parses it. What stays unverified without a network is the Hub's side: that it
    accepts the token, creates the repository and stores the files."""
    from dqn_harness.errors import UsageError
    from dqn_harness.scoring.export import upload_plan

    (trained / "taken").mkdir()
    proc = run_cli("export.py", "run=run", "out=taken", cwd=trained)
    assert proc.returncode == 2 and proc.stderr.startswith("error: out: ")
    assert list((trained / "taken").iterdir()) == []  # nothing written into it
    proc = run_cli(
        "export.py",
        "run=run",
        "out=pushed",
        "video=false",
        "repo_id=someone/cartpole-dqn",
        cwd=trained,
        extra_env={"HF_HUB_OFFLINE": "1", "HF_TOKEN": ""},
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: repo_id: could not push to someone/cartpole-dqn")
    assert len(proc.stderr.strip().splitlines()) == 1
    folder = trained / "pushed"
    assert (folder / "model.safetensors").exists()  # the export is kept

    plan = upload_plan(folder, "someone/cartpole-dqn")
    assert plan["repo_id"] == "someone/cartpole-dqn"
    assert plan["files"] == sorted(p.name for p in folder.iterdir())
    assert {"model.safetensors", "config.json", "dqn_harness.json", "README.md"} <= set(
        plan["files"]
    )
    assert "replay.gif" not in plan["files"]  # video=false
    assert plan["card"]["library_name"] == "dqn-harness"
    assert {"reinforcement-learning", "dqn", "CartPole-v1"} <= set(plan["card"]["tags"])
    for bad in ("someone/has space", "no-owner", "a/b/c"):
        with pytest.raises(UsageError) as caught:
            upload_plan(folder, bad)
        assert caught.value.key == "repo_id"
    proc = run_cli(
        "export.py", "run=run", "out=bad-id", "video=false", "repo_id=a/b/c", cwd=trained
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: repo_id: ")
