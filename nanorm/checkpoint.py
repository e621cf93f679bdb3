"""
Checkpoints that chain the stages (out/sft/ -> out/rm/ -> out/ppo/), and the JSONL metrics log.

A checkpoint is one dict of plain values and tensors:
    {"kind": "sft" | "rm" | "ppo" | "dpo", "model_config": {...}, "state_dict": {...},
     "config": {...the script's settings...}, "step": int, "tokenizer": {"name", "fingerprint"}, ...extras}
It is written to a temporary file and renamed into place, so a crash never leaves half a checkpoint
where a good one was, and it is read with torch.load(weights_only=True), which refuses to run code.

A stage writes all its files through an `OutDir`: each one beside its final name (ckpt.pt.partial,
metrics.jsonl.partial, ...), all renamed into place by `commit()`, the end of a successful run. A run
that fails or is interrupted at any point leaves the files of the previous run exactly as they were.
"""

import contextlib
import errno
import io
import json
import math
import os
import shutil
import signal
import tempfile

import torch

from nanorm import distributed
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
    except BaseException as e:
        if os.path.lexists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = tmp   # a failed write or fsync does not say which file it was
        raise
    os.replace(tmp, path)   # atomic on POSIX: readers see the old file or the new one, never a mix


def save_checkpoint(path, ckpt):
    buf = io.BytesIO()
    torch.save(ckpt, buf)   # serialised in memory first: a full disk is then an OSError of the write
    with atomic_open(path, "wb") as f:
        f.write(buf.getbuffer())


def file_error(e):
    """An OSError as one line naming the path and the cause: 'error: PATH: no space left on device'."""
    cause = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system",
             errno.ENOTDIR: "not a directory (a part of the path is a file)", errno.EISDIR: "is a directory",
             errno.EEXIST: "exists and is not a directory", errno.EACCES: "permission denied"}
    cause = cause.get(e.errno, e.strerror or str(e))
    return f"error: {e.filename or '?'}: {cause}"


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


def json_line(obj):
    """One JSON Lines record, valid JSON (a NaN becomes null)."""
    return json.dumps(finite_or_none(obj), allow_nan=False)


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


def resume_run(path, kind, tok, n_iters, objects, rng, gen, model_of):
    """Load a checkpoint to continue its run exactly: objects maps checkpoint fields to what loads them
    (models, optimizers: anything with load_state_dict); rng and gen get back the states random_streams
    saved. n_iters is where the continued run should end: at or below the checkpoint's step is an error.
    model_of = (path, checkpoint) of the model the run starts from: the resumed one must be of its shape."""
    state = load_checkpoint(path, kind, tok)
    if "rng_state" not in state:
        raise SystemExit(f"error: {path}: no field 'rng_state' (an older checkpoint): it cannot be continued exactly")
    if n_iters <= state["step"]:
        raise SystemExit(f"error: --n_iters={n_iters}: {path} is already at iteration {state['step']}; "
                         f"ask for more to continue it")
    other_path, other = model_of
    if state["model_config"] != other["model_config"]:
        diff = ", ".join(f"{k}={v} vs {other['model_config'].get(k)}" for k, v in state["model_config"].items()
                         if other["model_config"].get(k) != v)
        raise SystemExit(f"error: {path} is a model of another shape than {other_path} ({diff})")
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
    """Appends one JSON object per line (valid JSON: NaN -> null); a plot script reads it back with read_jsonl.
    A stage opens it with OutDir.metrics(), so it takes the place of metrics.jsonl only at commit()."""

    def __init__(self, path, rows=()):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.f = open(path, "w", encoding="utf-8")
        for row in rows:   # the rows a resumed run keeps from before
            self.log(**row)

    def log(self, **metrics):
        try:
            self.f.write(json_line(metrics) + "\n")
            self.f.flush()
        except OSError as e:
            e.filename = e.filename or self.path
            raise

    def close(self):
        if not self.f.closed:
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()


_UNFINISHED, _COMMITTED = [], set()


class OutDir:
    """A stage's out_dir, replaced whole or not at all.

    Every file goes beside its final name (out.path("ckpt.pt") is OUT/ckpt.pt.partial); commit(), the last
    write of a successful run, renames them all into place. A failure or Ctrl-C before then leaves the
    previous run's files as they were (the command line's cli() removes the .partial files; a SIGKILL
    leaves them beside, never in place of, the old ones).

    Under torchrun only rank 0's files land in out_dir; every other rank writes into a temporary directory
    of its own, removed when it commits.
    """

    def __init__(self, out_dir):
        if not distributed.is_main():   # data-parallel: the other ranks write the same files where they vanish
            out_dir = tempfile.mkdtemp(prefix=f"nanorm-rank{distributed.rank()}-")
        os.makedirs(out_dir, exist_ok=True)
        _take_lock(out_dir)
        self.dir, self.files, self.logs = out_dir, [], []
        _UNFINISHED.append(self)
        _COMMITTED.discard(out_dir)

    def path(self, name):
        """Where to write the file `name` during the run."""
        self.files.append(name)
        return os.path.join(self.dir, name + ".partial")

    def metrics(self, rows=()):
        """The run's metrics.jsonl, starting with `rows` (a resumed run's history)."""
        log = MetricsLog(self.path("metrics.jsonl"), rows)
        self.logs.append(log)
        return log

    def commit(self):
        """Every file into place, Ctrl-C held off until all are renamed."""
        for log in self.logs:
            log.close()
        with _sigint_held():
            for name in self.files:
                os.replace(os.path.join(self.dir, name + ".partial"), os.path.join(self.dir, name))
            _UNFINISHED.remove(self)
            _COMMITTED.add(self.dir)
            _release_lock(self.dir)
        if not distributed.is_main():
            shutil.rmtree(self.dir, ignore_errors=True)

    def discard(self):
        for log in self.logs:
            log.f.close()
        for name in self.files:
            partial = os.path.join(self.dir, name + ".partial")
            if os.path.lexists(partial):
                os.remove(partial)
        _UNFINISHED.remove(self)
        _release_lock(self.dir)


LOCK = ".writing"   # in an out_dir while a run writes there: the run's process id


def _take_lock(out_dir):
    """Two runs writing one out_dir would rename each other's files into place. The second one stops, with
    one line, while the first is alive; a lock left by a process that is gone (SIGKILL) is taken over."""
    path = os.path.join(out_dir, LOCK)
    try:
        with open(path) as f:
            pid = int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        pid = 0
    if pid and pid != os.getpid() and _alive(pid):
        raise SystemExit(f"error: {out_dir}: another run (process {pid}) is writing there; wait for it to "
                         f"end, or give this run another --out_dir")
    with open(path, "w") as f:
        f.write(str(os.getpid()))


def _release_lock(out_dir):
    path = os.path.join(out_dir, LOCK)
    try:
        with open(path) as f:
            mine = f.read().strip() == str(os.getpid())
        if mine:
            os.remove(path)
    except (FileNotFoundError, ValueError):
        pass


def _alive(pid):
    try:
        os.kill(pid, 0)          # signal 0: no signal, just "does it exist?"
    except ProcessLookupError:
        return False
    except PermissionError:      # it exists, and belongs to someone else
        return True
    return True


@contextlib.contextmanager
def _sigint_held():
    """Ctrl-C is delivered after the block, not in the middle of it (POSIX; elsewhere a no-op)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def discard_unfinished():
    """Remove the .partial files of every run that has not committed (after a failure or Ctrl-C)."""
    for out in list(_UNFINISHED):
        out.discard()


def committed(out_dir):
    """Has a run of this process committed out_dir (so an interrupt came after its files were saved)?"""
    return out_dir in _COMMITTED


def resumed_rows(ckpt_path, step, key):
    """The rows of the metrics.jsonl beside a checkpoint up to its step (the history a resumed run continues)."""
    path = os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), "metrics.jsonl")
    return [row for row in read_jsonl(path) if row.get(key, 0) <= step] if os.path.isfile(path) else []


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
