"""
Plumbing shared by the scripts: the `--key=value` config parser, the checks of its values, the command
line entry point, device choice, seeding and seed offsets.

Each script declares one dataclass of settings, with a comment per field, and a `check()` method with one
line per rule (`require`, `at_least`, `one_of` below). `parse_config` fills it from the command line,
converting each value to the field's type, and stops with a one-line error naming the flag when a flag
is unknown, its value is not of the right type, not a finite number, or breaks one of the rules:

    error: --batch_size=0: must be at least 1

No config file is ever executed, and no rule is an `assert` (those vanish under `python -O`).
"""

import dataclasses
import inspect
import math
import os
import random
import re
import sys

import numpy as np
import torch

from nanorm import distributed


def parse_config(cls, argv):
    """`--key=value` flags -> an instance of dataclass `cls`. `--help` prints the fields and exits.

    A bool field also takes a bare `--key` (true) and `--key=true|false|1|0|yes|no|on|off`.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for arg in argv:
        if arg in ("-h", "--help"):
            print(help_text(cls))
            raise SystemExit(0)
        if not arg.startswith("--"):
            raise SystemExit(f"error: bad argument {arg!r}: expected --key=value")
        key, sep, raw = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key not in fields:
            raise SystemExit(f"error: unknown flag --{key}; valid flags: " + ", ".join(f"--{k}" for k in fields))
        if not sep and _type_name(fields[key].type) != "bool":
            raise SystemExit(f"error: bad argument {arg!r}: expected --{key}=value")
        values[key] = _convert(key, raw if sep else "true", fields[key].type)
    return make_config(cls, **values)


def make_config(cls, **values):
    """cls(**values), checked as on the command line: unknown fields, non-finite numbers, then cls.check()."""
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise SystemExit(f"error: unknown flag {', '.join('--' + k for k in sorted(unknown))}")
    cfg = cls(**values)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        require(cfg, f.name, not isinstance(value, float) or math.isfinite(value), "must be a finite number")
    if hasattr(cfg, "check"):
        cfg.check()
    return cfg


# ----------------------------------------------------------------------------------------------------
# The rules of a config's check(): each stops with `error: --flag=value: reason`.

def require(cfg, flag, ok, reason):
    """One rule: unless ok, stop with a one-line error naming the flag, its value and the reason."""
    if not ok:
        raise SystemExit(f"error: --{flag}={getattr(cfg, flag)}: {reason}")


def at_least(cfg, low, *flags):
    """Each of these flags must be >= low."""
    for flag in flags:
        require(cfg, flag, getattr(cfg, flag) >= low, f"must be at least {low}")


def above(cfg, low, *flags):
    """Each of these flags must be > low."""
    for flag in flags:
        require(cfg, flag, getattr(cfg, flag) > low, f"must be greater than {low}")


def one_of(cfg, flag, choices):
    require(cfg, flag, getattr(cfg, flag) in choices, "expected " + " or ".join(map(str, choices)))


def within(cfg, low, high, *flags):
    """Each of these flags must be in [low, high]."""
    for flag in flags:
        require(cfg, flag, low <= getattr(cfg, flag) <= high, f"must be in [{low}, {high}]")


def at_most_prompts(cfg, **splits):
    """flag=split: the flag asks for some of the world's `split` prompts, no more than the split holds."""
    from nanorm import world
    for flag, split in splits.items():
        n = len(world.make_split(split))
        require(cfg, flag, getattr(cfg, flag) <= n, f"the world's {split} split has only {n} prompts")


def warn_if(cfg, flag, condition, consequence):
    """Not an error, but said: a run that trains nothing (--max_iters=0, --lr=0, --epochs=0) still runs,
    saves its (untrained) model and evaluates it, after this one line on stderr."""
    if condition:
        print(f"warning: --{flag}={getattr(cfg, flag)}: {consequence}", file=sys.stderr)


def check_system(cfg):
    """The rules every stage shares: --out_dir, --device, --dtype, --seed, --threads."""
    require(cfg, "out_dir", cfg.out_dir.strip(), "must name a directory")
    require(cfg, "device", re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", cfg.device),
            "expected auto, cpu, cuda, cuda:N or mps")
    one_of(cfg, "dtype", ("float32", "bfloat16"))
    require(cfg, "seed", 0 <= cfg.seed < 2**32, "must be in [0, 2**32)")   # numpy's range
    at_least(cfg, 0, "threads")


def field_comments(cls):
    """{field: its comment} read from the dataclass's source: the `# ...` after the field and any
    comment-only lines right below it (the comments ARE the documentation, so --help prints them)."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    comments, last, column = {}, None, None
    for line in lines:
        m = re.match(r"^\s+(\w+)\s*:[^=#]*=[^#]*(#\s?(.*))?$", line)
        if m and m.group(1) in names:
            last, column = m.group(1), m.start(2) if m.group(2) else None
            comments[last] = (m.group(3) or "").strip()
        elif last and column is not None and line.find("#") == column and not line[:column].strip():
            comments[last] += " " + line[column + 1:].strip()     # a comment continued on the next line
        else:
            last = None
    return comments


def help_text(cls):
    """The script's one-line purpose, then every flag with its default and its comment."""
    doc = (sys.modules.get(cls.__module__).__doc__ or "").strip()
    purpose = doc.splitlines()[0] if doc else ""
    comments = field_comments(cls)
    rows = [(f"--{f.name}={f.default!r}", f"({_type_name(f.type)}) {comments.get(f.name, '')}".rstrip())
            for f in dataclasses.fields(cls)]
    width = max(len(a) for a, _ in rows)
    return "\n".join([f"usage: {os.path.basename(sys.argv[0])} [--key=value ...]", *([purpose] if purpose else []), ""]
                     + [f"  {a.ljust(width)}  {b}" for a, b in rows])


def _type_name(t):
    return t if isinstance(t, str) else t.__name__


def _convert(key, raw, typ):
    typ = _type_name(typ)
    try:
        if typ == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ == "int":
            return int(raw)
        if typ == "float":
            return float(raw)
        return raw
    except ValueError:
        raise SystemExit(f"error: --{key}={raw!r} is not a valid {typ}") from None


def print_config(cfg):
    print(f"{type(cfg).__name__}:")
    for k, v in dataclasses.asdict(cfg).items():
        print(f"  {k} = {v!r}")


def get_device(name="auto"):
    """cuda -> mps -> cpu, unless a device is named. Printed so a run says where it ran."""
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"error: --device={name} but CUDA is not available here")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SystemExit("error: --device=mps but MPS is not available here")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise SystemExit(f"error: --device={name}: expected auto, cpu, cuda, cuda:N or mps")
    return torch.device(name)


def autocast(device, dtype="float32"):
    """bf16 autocast where asked for and supported; a no-op context for float32."""
    import contextlib
    if dtype == "float32":
        return contextlib.nullcontext()
    if dtype != "bfloat16":
        raise SystemExit(f"error: --dtype={dtype}: expected float32 or bfloat16")
    if device.type == "mps":
        return contextlib.nullcontext()   # keep MPS in float32: bf16 autocast support varies by version
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def cli(main, cls, argv=None):
    """The last line of every script: parse the flags, run main(cfg), and turn what can go wrong outside
    the program into one line on stderr instead of a traceback: Ctrl-C (exit 130) and a file error (no
    space left, read-only, not a directory: exit 1). Either way the stage's out_dir keeps the files it had
    (nanorm/checkpoint.py::OutDir)."""
    from nanorm.checkpoint import committed, discard_unfinished, file_error
    cfg = None
    try:
        cfg = parse_config(cls, sys.argv[1:] if argv is None else argv)
        result = main(cfg)
        distributed.finish()   # torchrun's processes leave together (one process: nothing to do)
        return result
    except KeyboardInterrupt:
        discard_unfinished()
        if cfg is not None and committed(cfg.out_dir):
            print(f"interrupted: after {cfg.out_dir} was saved", file=sys.stderr)
        else:
            print(f"interrupted: nothing was saved; {getattr(cfg, 'out_dir', 'the out_dir')} is as it was",
                  file=sys.stderr)
        raise SystemExit(130) from None
    except OSError as e:
        discard_unfinished()
        raise SystemExit(file_error(e)) from None
    except BaseException:
        discard_unfinished()
        raise


def start(cfg, data_parallel=False):
    """The start of every stage's main(cfg): pick the device, join the other processes if torchrun started
    several (data_parallel stages only: nanorm/distributed.py), print the config, set threads and seeds.
    Only rank 0 prints.

    Called inside main(), not at import, so a stage run from Python (an experiment, a test) starts from
    exactly the same state as the same stage run from the command line: same seed, same numbers.
    """
    device = get_device(cfg.device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not data_parallel:
        raise SystemExit(f"error: {os.path.basename(sys.argv[0])} runs in one process; start it with python, "
                         "not torchrun (nanorm/distributed.py says which stages are data-parallel)")
    device = distributed.init(device)
    if not distributed.is_main():
        sys.stdout = open(os.devnull, "w")   # the other ranks compute the same reports; rank 0 prints them
    print_config(cfg)
    print(f"device: {device}" + (f", {distributed.world_size()} processes" if distributed.world_size() > 1 else ""))
    if getattr(cfg, "threads", 0):
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    return device


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------------
# Seed offsets. Each random stream is seeded with --seed plus one of these, so that two files that must
# draw the same samples (train_ppo.py's evaluations and the overoptimization experiment's, PPO's and
# DPO's test comparisons) name the same constant instead of repeating a bare number.

SEED_SFT_EVAL = 1          # train_sft.py: the evaluation samples of the SFT model
SEED_HELDOUT_RANKINGS = 1  # train_rm.py: labeler A's rankings of the held-out prompts
SEED_LABELER_B = 2         # train_rm.py: labeler B's rankings of the same (inter-labeler agreement)
SEED_CONTRASTS = 3         # train_rm.py: the minimal edits of its contrast pairs and their labels
SEED_VAL_EVAL = 7          # every periodic evaluation of a policy on validation prompts (PPO, DPO, experiments)
SEED_BEST_OF_N_CURVE = 11  # the overoptimization experiment's pool of best-of-n samples
SEED_TEST = {"sft": 1000, "ppo": 1001, "best_of_n": 1002, "dpo": 1003}   # the final test-prompt comparisons
