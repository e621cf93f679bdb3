"""The `exercise` marker: which tests grade which exercise of the course (see nanorm/course/assignments.py).

    python -m pytest -q tests --exercise=2.1     # only the tests that grade lesson 2, exercise 1
    python -m pytest -q tests --exercise=5       # ... every exercise of lesson 5
    python -m pytest -q tests -m exercise        # every graded test

And the tiny SFT and RM checkpoints that the end-to-end tests share (at the end of this file).
"""

import collections
import re

import pytest

from nanorm import stages

LABEL = re.compile(r"^\d+\.\d+$")


def pytest_addoption(parser):
    parser.addoption("--exercise", action="append", default=[], metavar="N.M",
                     help="run only the tests that grade exercise N.M (or every exercise of lesson N); repeatable")


def pytest_configure(config):
    config.addinivalue_line("markers", "exercise(*labels): the test grades these exercises (\"N.M\")")


def exercise_labels(item):
    labels = []
    for mark in item.iter_markers("exercise"):
        for label in mark.args:
            if not (isinstance(label, str) and LABEL.match(label)):
                raise pytest.UsageError(f"{item.nodeid}: exercise label {label!r} is not of the form 'N.M'")
            labels.append(label)
    return sorted(set(labels), key=lambda s: tuple(map(int, s.split("."))))


def pytest_collection_modifyitems(config, items):
    wanted = config.getoption("--exercise")
    keep, drop = [], []
    for item in items:
        labels = exercise_labels(item)
        item.user_properties.append(("exercise", ",".join(labels)))   # read back from JUnit XML
        if not wanted or any(l == w or l.startswith(w + ".") for l in labels for w in wanted):
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# ----------------------------------------------------------------------------------------------------
# Tiny checkpoints shared by the end-to-end tests (tests/test_pipeline.py, tests/test_ppo_runs.py): each
# stage is run once per session, in this process, through nanorm.stages, on a 1-layer, 32-wide model.
# A test that uses one of them runs every exercise of that stage and of the stages before it, and its
# @pytest.mark.exercise names them all, as literals (nanorm/course/ reads the markers without running them):
#   SFT 1.1, 2.1;  RM 1.1, 3.1 to 3.5, 4.1 to 4.3;  PPO 1.1, 3.1, 3.2, 5.1 to 5.5 (5.6 with --kl_ctl=adaptive);
#   DPO 1.1, 3.1 to 3.5, 4.1, 8.2.

Stage = collections.namedtuple("Stage", "dir flags report")

SYSTEM = {"device": "cpu", "threads": 1}


@pytest.fixture(scope="session")
def tiny_sft(tmp_path_factory):
    """train_sft.py's main: 30 steps of 32 sequences (5 of warm-up) on 200 training prompts, 24 test prompts
    sampled at the end."""
    out = tmp_path_factory.mktemp("tiny") / "sft"
    flags = {"out_dir": str(out), "n_layer": 1, "n_head": 2, "n_embd": 32, "batch_size": 32, "max_iters": 30,
             "warmup_iters": 5, "n_train_prompts": 200, "n_eval_prompts": 24, "eval_interval": 15, **SYSTEM}
    return Stage(out, flags, stages.run("sft", **flags))


@pytest.fixture(scope="session")
def tiny_rm(tiny_sft):
    """train_rm.py's main on the tiny SFT model: 20 ranked training prompts (K = 4..5), 10 held-out ones."""
    out = tiny_sft.dir.parent / "rm"
    flags = {"sft_ckpt": str(tiny_sft.dir / "ckpt.pt"), "out_dir": str(out), "n_prompts": 20, "n_eval_prompts": 10,
             "k_max": 5, "eval_interval": 2, "prompts_per_batch": 8, **SYSTEM}
    return Stage(out, flags, stages.run("rm", **flags))


def ppo_flags(sft, rm, out_dir, **more):
    """Tiny train_ppo.py flags on the session's checkpoints: rollouts of 8 prompts, 2 epochs of minibatches
    of 4, evaluations on 8 validation prompts, the final comparison on 12 test prompts."""
    return {"sft_ckpt": str(sft.dir / "ckpt.pt"), "rm_ckpt": str(rm.dir / "ckpt.pt"), "out_dir": str(out_dir),
            "batch_size": 8, "minibatch_size": 4, "ppo_epochs": 2, "n_eval_prompts": 8, "n_test_prompts": 12,
            **SYSTEM, **more}
