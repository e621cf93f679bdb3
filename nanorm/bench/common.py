"""Plumbing shared by the benchmarks: device and threads, timing, the machine, the table and the JSON file."""

import json
import os
import platform
import statistics
import subprocess
import time

import torch

from nanorm.config import get_device


def setup(cfg):
    """Threads and device from a benchmark's config; returns the device."""
    if getattr(cfg, "threads", 0):
        torch.set_num_threads(cfg.threads)
    return get_device(getattr(cfg, "device", "auto"))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_interleaved(fns, device, repeats=5, warmup=1):
    """Time several callables in turns (a, b, a, b, ...) so that a slowdown of the shared machine hits all
    of them alike. Returns {name: median seconds per call}."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def matmul_peak(device, dtype, n=2048, repeats=5):
    """FLOP/s of one large square matmul (2 n^3 FLOPs): this machine's practical peak at that dtype."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = time_interleaved({"mm": lambda: a @ b}, device, repeats=repeats, warmup=2)["mm"]
    return 2 * n ** 3 / t


def busy_processes():
    """Other processes using a lot of CPU right now (the machine may be shared): what could skew timings."""
    try:
        ps = subprocess.run(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu", "--no-headers"], capture_output=True,
                            text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return []
    out = []
    for line in ps[:10]:
        pid, pcpu, args = line.split(None, 2)
        if int(pid) != os.getpid() and float(pcpu) >= 20:
            out.append(f"{pid} {pcpu}% {args[:120]}")
    return out


def machine_info(device):
    info = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "busy_processes": busy_processes()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    else:
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return info


def out_path(name):
    """$OUT/NAME.json when the OUT environment variable is set (the GPU machine), else out/bench/NAME.json."""
    folder = os.environ.get("OUT") or os.path.join("out", "bench")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{name}.json")


def write_json(name, report):
    path = out_path(name)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {path}")
    return path


def print_table(rows, columns):
    """rows: list of dicts; columns: list of (key, header, format)."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        cells.append([("-" if row.get(k) is None else fmt.format(row[k])) for k, _, fmt in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for j, r in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            print("  " + "  ".join("-" * w for w in widths))


def model_config(name, vocab_size):
    """GPTConfig of the default (CPU) model or of the GPU configuration's model."""
    from nanorm.bench.gpu_config import MODEL
    from nanorm.model import GPTConfig
    sizes = {"default": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 96}, "gpu": MODEL}
    if name not in sizes:
        raise SystemExit(f"error: --config={name}: expected default or gpu")
    return GPTConfig(vocab_size=vocab_size, **sizes[name])


def sft_examples(tok, n_prompts, demos_per_prompt=2, seed=0):
    """(prompt ids, response ids + EOS) pairs made by train_sft.py's own make_examples (family balancing
    included), from the first n_prompts training prompts."""
    import random

    from nanorm import stages, world
    cfg = stages.config("sft", demos_per_prompt=demos_per_prompt, seed=seed)
    prompts = world.make_split("train", n_prompts, seed=seed)
    return stages.module("sft").make_examples(prompts, tok, random.Random(seed), cfg)
