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
    proc = run_cli("export.py", "run=run", "out=exported", cwd=trained)
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = trained / "exported"
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "dqn_harness.json", "README.md"} <= names
    assert (folder / "replay.gif").stat().st_size > 1000
    from safetensors.torch import load_file

    assert any(k.endswith("weight") for k in load_file(str(folder / "model.safetensors")))
    config = json.loads((folder / "config.json").read_text())
    assert config["env"]["id"] == "CartPole-v1" and config["protocol"]["name"] == "preset"
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: dqn-harness") and "`preset`" in card
    assert "python train.py env=cartpole total_steps=2000" in card  # how to train it again
    # best.pt is not the run's last step: the card says which step the weights are from
    assert "for 2,000 agent steps" in card and "checkpoint at agent step 1,001." in card
    # the round trip: the folder plays the same episodes as the run's best.pt
    original = scored(trained, "run=run")
    again = scored(trained, f"checkpoint={folder}")
    assert again["returns"] == original["returns"] and again["checkpoint_env_steps"] == 1001
    assert list(folder.glob("eval-exported-*.json"))  # the folder keeps its own results


def test_export_refuses_an_existing_folder_and_a_push_offline_keeps_the_folder(trained):
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
    assert (trained / "pushed" / "model.safetensors").exists()  # the export is kept
