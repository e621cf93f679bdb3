"""
Plumbing shared by the scripts: the `--key=value` config parser, device choice and seeding.

Each script declares one dataclass of settings, with a comment per field. `parse_config` fills it
from the command line, converting each value to the field's type, and stops with a one-line error
naming the flag when a flag is unknown or its value is not of the right type. No config file is ever
executed.
"""

import dataclasses
import os
import random
import sys

import numpy as np
import torch


def parse_config(cls, argv):
    """`--key=value` flags -> an instance of dataclass `cls`. `--help` prints the fields and exits."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for arg in argv:
        if arg in ("-h", "--help"):
            print(f"usage: {os.path.basename(sys.argv[0])} [--key=value ...]\n")
            for f in fields.values():
                print(f"  --{f.name}={f.default!r}  ({_type_name(f.type)})")
            raise SystemExit(0)
        if not arg.startswith("--") or "=" not in arg:
            raise SystemExit(f"error: bad argument {arg!r}: expected --key=value")
        key, raw = arg[2:].split("=", 1)
        key = key.replace("-", "_")
        if key not in fields:
            raise SystemExit(f"error: unknown flag --{key}; valid flags: " + ", ".join(f"--{k}" for k in fields))
        values[key] = _convert(key, raw, fields[key].type)
    cfg = cls(**values)
    if hasattr(cfg, "check"):
        cfg.check()
    return cfg


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


def setup(cls, argv):
    """The start of every script: parse and print the config, pick the device, set threads and seeds."""
    cfg = parse_config(cls, argv)
    print_config(cfg)
    device = get_device(cfg.device)
    print(f"device: {device}")
    if getattr(cfg, "threads", 0):
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    return cfg, device


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
