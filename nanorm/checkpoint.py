"""
Checkpoints that chain the stages (out/sft/ -> out/rm/ -> out/ppo/), and the JSONL metrics log.

A checkpoint is one dict of plain values and tensors:
    {"kind": "sft" | "rm" | "ppo" | "dpo", "model_config": {...}, "state_dict": {...},
     "config": {...the script's settings...}, "step": int, "tokenizer": {"name", "fingerprint"}, ...extras}
It is written to a temporary file and renamed into place, so a crash never leaves half a checkpoint
where a good one was, and it is read with torch.load(weights_only=True), which refuses to run code.
"""

import json
import os

import torch

from nanorm.model import GPTConfig


def save_checkpoint(path, ckpt):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    try:
        torch.save(ckpt, tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)   # atomic on POSIX: readers see the old file or the new one, never a mix


def load_checkpoint(path, kind=None, tokenizer=None):
    """Load and check a checkpoint. `kind` may be one kind or a tuple of accepted kinds."""
    if not os.path.exists(path):
        raise SystemExit(f"error: checkpoint {path} not found" + (f" (run the {kind} stage first?)" if kind else ""))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SystemExit(f"error: {path}: not a readable nanorm checkpoint ({e.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or "kind" not in ckpt or "state_dict" not in ckpt:
        raise SystemExit(f"error: {path}: not a nanorm checkpoint (no 'kind' or 'state_dict' field)")
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and ckpt["kind"] not in kinds:
        raise SystemExit(f"error: {path}: field 'kind' is {ckpt['kind']!r}, expected {' or '.join(kinds)}")
    if tokenizer is not None and ckpt["tokenizer"]["fingerprint"] != tokenizer.fingerprint:
        raise SystemExit(f"error: {path}: field 'tokenizer' is {ckpt['tokenizer']['name']} "
                         f"({ckpt['tokenizer']['fingerprint']}), but the tokenizer in use is "
                         f"{tokenizer.name} ({tokenizer.fingerprint})")
    return ckpt


def model_config(ckpt):
    return GPTConfig(**ckpt["model_config"])


def tokenizer_info(tok):
    return {"name": tok.name, "fingerprint": tok.fingerprint}


class MetricsLog:
    """Appends one JSON object per line; a plot script reads it back with read_jsonl."""

    def __init__(self, path, fresh=True):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.f = open(path, "w" if fresh else "a", encoding="utf-8")

    def log(self, **metrics):
        self.f.write(json.dumps(metrics) + "\n")
        self.f.flush()

    def close(self):
        self.f.close()


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
