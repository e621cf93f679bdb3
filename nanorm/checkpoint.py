"""
Checkpoints that chain the stages (out/sft/ -> out/rm/ -> out/ppo/), and the JSONL metrics log.

A checkpoint is one dict of plain values and tensors:
    {"kind": "sft" | "rm" | "ppo" | "dpo", "model_config": {...}, "state_dict": {...},
     "config": {...the script's settings...}, "step": int, "tokenizer": {"name", "fingerprint"}, ...extras}
It is written to a temporary file and renamed into place, so a crash never leaves half a checkpoint
where a good one was, and it is read with torch.load(weights_only=True), which refuses to run code.
"""

import contextlib
import json
import math
import os

import torch

from nanorm.model import GPTConfig


@contextlib.contextmanager
def atomic_open(path, mode="w"):
    """Open `path` for writing so that it is replaced whole or not at all.

    Writes go to PATH.tmp, which is renamed over PATH only when the block finishes; if anything fails
    (an exception, Ctrl-C), the temporary file is removed and PATH is left exactly as it was.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())   # on disk before the rename (a full disk fails here, not later)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)   # atomic on POSIX: readers see the old file or the new one, never a mix


def save_checkpoint(path, ckpt):
    with atomic_open(path, "wb") as f:
        torch.save(ckpt, f)


def finite_or_none(obj):
    """obj with every NaN or infinite float replaced by None, so that it is valid JSON (null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def write_json(path, obj):
    """A stage's report (eval.json), written atomically, as valid JSON (a NaN statistic becomes null)."""
    with atomic_open(path) as f:
        json.dump(finite_or_none(obj), f, indent=1, allow_nan=False)


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


def random_streams(rng, gen):
    """The state of a run's random streams (a random.Random and a torch.Generator), to store in its checkpoint."""
    return {"rng_state": rng.getstate(), "gen_state": gen.get_state()}


def resume_run(path, kind, tok, n_iters, objects, rng, gen):
    """Load a checkpoint to continue its run exactly: objects maps checkpoint fields to what loads them
    (models, optimizers: anything with load_state_dict); rng and gen get back the states random_streams
    saved. n_iters is where the continued run should end: at or below the checkpoint's step is an error."""
    state = load_checkpoint(path, kind, tok)
    if "rng_state" not in state:
        raise SystemExit(f"error: {path}: no field 'rng_state' (an older checkpoint): it cannot be continued exactly")
    if n_iters <= state["step"]:
        raise SystemExit(f"error: --n_iters={n_iters}: {path} is already at iteration {state['step']}; "
                         f"ask for more to continue it")
    for field, obj in objects.items():
        obj.load_state_dict(state[field])
    rng.setstate(_as_tuples(state["rng_state"]))
    gen.set_state(state["gen_state"])
    print(f"resumed from {path} at iteration {state['step']}")
    return state


def _as_tuples(x):
    """random.Random.setstate wants the tuples getstate gave (a checkpoint may hand back lists)."""
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


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
