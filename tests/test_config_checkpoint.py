"""Config flags and checkpoints: clear one-line errors, atomic writes, weights_only loads."""

import os
from dataclasses import dataclass

import pytest
import torch

from nanorm.checkpoint import load_checkpoint, save_checkpoint
from nanorm.config import parse_config


@dataclass
class Cfg:
    lr: float = 1e-3
    steps: int = 10
    name: str = "x"
    flag: bool = False


def test_flags_are_converted_to_the_field_types():
    cfg = parse_config(Cfg, ["--lr=3e-4", "--steps=5", "--name=abc", "--flag=true"])
    assert cfg == Cfg(lr=3e-4, steps=5, name="abc", flag=True)


@pytest.mark.parametrize("argv, message", [
    (["--nope=1"], "unknown flag --nope"),
    (["--steps=1.5"], "--steps='1.5' is not a valid int"),
    (["--flag=maybe"], "is not a valid bool"),
    (["steps=3"], "expected --key=value"),
])
def test_bad_flags_give_one_line_errors(argv, message):
    with pytest.raises(SystemExit) as e:
        parse_config(Cfg, argv)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_checkpoint_round_trip_and_kind_check(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    ckpt = {"kind": "sft", "state_dict": {"w": torch.ones(2)}, "model_config": {"n_embd": 4},
            "config": {"lr": 0.1}, "step": 3, "tokenizer": {"name": "t", "fingerprint": "abc"}}
    save_checkpoint(path, ckpt)
    assert not os.path.exists(path + ".tmp")
    back = load_checkpoint(path, "sft")
    assert torch.equal(back["state_dict"]["w"], torch.ones(2)) and back["step"] == 3
    with pytest.raises(SystemExit, match="field 'kind' is 'sft', expected rm"):
        load_checkpoint(path, "rm")


def test_bad_checkpoints_are_refused_clearly(tmp_path):
    with pytest.raises(SystemExit, match="not found"):
        load_checkpoint(str(tmp_path / "missing.pt"), "sft")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="not a readable nanorm checkpoint"):
        load_checkpoint(str(junk), "sft")
    other = str(tmp_path / "other.pt")
    torch.save({"weights": torch.ones(1)}, other)
    with pytest.raises(SystemExit, match="no 'kind' or 'state_dict' field"):
        load_checkpoint(other, "sft")


def test_failed_save_keeps_the_old_checkpoint(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    good = {"kind": "sft", "state_dict": {"w": torch.ones(1)}}
    save_checkpoint(path, good)
    with pytest.raises(Exception):
        save_checkpoint(path, {"kind": "sft", "state_dict": {"w": lambda: 0}})   # cannot be pickled
    assert torch.equal(load_checkpoint(path, "sft")["state_dict"]["w"], torch.ones(1))
