"""
The whole pipeline, timed: each stage's wall time, peak memory and key results.

    python -m nanorm.bench.pipeline --extra="--threads=1"      # the default (CPU) configuration
    python -m nanorm.bench.pipeline --config=gpu               # the GPU configuration (nanorm/bench/gpu_config.py)
    python -m nanorm.bench.pipeline --config=gpu --smoke --extra="--device=cpu"   # seconds: does the path run?

Runs train_sft.py, train_rm.py and train_ppo.py as subprocesses, chained through their own out_dir
(out/bench/pipeline_<config>/{sft,rm,ppo}: the stages' usual out/ folders are left alone). Flags, later
ones winning: the configuration's (none for default), --smoke's cuts, --extra (every stage), then
--sft / --rm / --ppo (one stage each), e.g. --ppo="--n_iters=10".

Peak memory: on CPU the child's peak resident set (ru_maxrss from os.wait4); on CUDA the script's own
`peak GPU memory` line (torch.cuda.max_memory_allocated). The JSON is rewritten after every stage, so a
run cut short still leaves what it measured: $OUT/NAME.json if OUT is set, else out/bench/NAME.json.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from nanorm.bench import gpu_config
from nanorm.bench.common import machine_info, out_path, print_table, write_json
from nanorm.config import get_device, parse_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class PipelineConfig:
    config: str = "default"            # default (each script's defaults) | gpu (nanorm/bench/gpu_config.py)
    smoke: bool = False                # cut the work to seconds (gpu_config.SMOKE): does the path run?
    extra: str = ""                    # flags for every stage, e.g. "--threads=1 --device=cpu"
    sft: str = ""                      # flags for train_sft.py alone
    rm: str = ""                       # flags for train_rm.py alone
    ppo: str = ""                      # flags for train_ppo.py alone, e.g. "--n_iters=10"
    stages: str = "sft,rm,ppo"         # the stages to run, in this order
    out_dir: str = ""                  # where the stages write (STAGE/ below it); empty = out/bench/NAME
    out: str = ""                      # the JSON's name; empty = pipeline[_gpu][_smoke]


def key_results(stage, ev):
    """The few numbers that say whether a stage worked, from its eval.json."""
    if stage == "sft":
        return {"eos_rate": ev.get("eos_rate"), "gold_mean": ev.get("gold_mean"), "val_loss": ev.get("val_loss")}
    if stage == "rm":
        return {"heldout_accuracy": ev.get("accuracy"), "gold_accuracy": ev.get("gold_accuracy"),
                "bayes_ceiling": ev.get("bayes_ceiling")}
    ppo, sft = ev.get("ppo", {}), ev.get("sft", {})
    bo = next((v for k, v in ev.items() if k.startswith("best_of_")), {})
    return {"win_rate_vs_sft": ppo.get("win_rate_vs_sft"), "gold_ppo": ppo.get("gold"), "gold_sft": sft.get("gold"),
            "kl": ppo.get("kl"), "best_of_n_win_rate": bo.get("win_rate_vs_sft")}


def run_stage(stage, args, log_path):
    """Run one script; returns (exit status, wall seconds, peak RSS in MiB of that child alone)."""
    with open(log_path, "w") as log:
        t0 = time.time()
        child = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        _, status, usage = os.wait4(child.pid, 0)   # this child's own resource usage (Linux: KiB)
        child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, time.time() - t0, usage.ru_maxrss / 1024


def main(argv=None):
    flags = parse_config(PipelineConfig, sys.argv[1:] if argv is None else argv)
    if flags.config not in ("default", "gpu"):
        raise SystemExit(f"error: --config={flags.config}: expected default or gpu")
    name = flags.out or "pipeline" + ("_gpu" if flags.config == "gpu" else "") + ("_smoke" if flags.smoke else "")
    out_dir = flags.out_dir or os.path.join("out", "bench", name)
    stage_flags = gpu_config.FLAGS if flags.config == "gpu" else {"sft": {}, "rm": {}, "ppo": {}}
    scripts = {"sft": "train_sft.py", "rm": "train_rm.py", "ppo": "train_ppo.py"}
    chain = {"sft": [], "rm": [f"--sft_ckpt={out_dir}/sft/ckpt.pt"],
             "ppo": [f"--sft_ckpt={out_dir}/sft/ckpt.pt", f"--rm_ckpt={out_dir}/rm/ckpt.pt"]}
    report = {"config": flags.config, "smoke": flags.smoke, "flags": asdict(flags), "out_dir": out_dir,
              "machine": machine_info(get_device("cpu")), "stages": {}}
    try:   # which accelerator the scripts will pick (they choose for themselves, like a user's run)
        import torch
        report["machine"]["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception as e:   # noqa: BLE001 - a description only
        report["machine"]["gpu"] = repr(e)
    ok = True
    for stage in flags.stages.split(","):
        cfg = {**stage_flags[stage], **(gpu_config.SMOKE[stage] if flags.smoke else {})}
        args = [scripts[stage], f"--out_dir={out_dir}/{stage}", *chain[stage], *(f"--{k}={v}" for k, v in cfg.items()),
                *shlex.split(flags.extra), *shlex.split(getattr(flags, stage))]
        os.makedirs(os.path.join(out_dir, stage), exist_ok=True)
        log_path = os.path.join(out_dir, f"{stage}.log")
        print(f"[{stage}] python {' '.join(args)}", flush=True)
        status, seconds, rss = run_stage(stage, args, log_path)
        log = open(log_path).read()
        gpu = re.findall(r"peak GPU memory: (\d+) MiB", log)
        result = {"command": "python " + " ".join(args), "exit_status": status, "seconds": round(seconds, 1),
                  "peak_rss_mib": round(rss), "peak_gpu_mib": int(gpu[-1]) if gpu else None,
                  "device": (re.findall(r"^device: (\S+)", log, re.M) or [None])[0]}
        eval_path = os.path.join(out_dir, stage, "eval.json")
        if status == 0 and os.path.exists(eval_path):
            result["eval"] = json.load(open(eval_path))
            result["key_results"] = key_results(stage, result["eval"])
        else:
            result["log_tail"] = log[-3000:]
            ok = False
        report["stages"][stage] = result
        report["total_seconds"] = round(sum(s["seconds"] for s in report["stages"].values()), 1)
        write_json(name, report)   # after every stage: a run cut short keeps what it measured
        if os.environ.get("OUT"):
            shutil.copy(log_path, os.path.join(os.environ["OUT"], f"{name}_{stage}.log"))
        print(f"[{stage}] exit {status} after {seconds:.0f}s; key results: {result.get('key_results')}", flush=True)
        if not ok:
            print(log[-3000:])
            break

    rows = [{"stage": stage, **s, **s.get("key_results", {})} for stage, s in report["stages"].items()]
    print(f"\npipeline, config={flags.config}{' (smoke)' if flags.smoke else ''}:")
    print_table(rows, [("stage", "stage", "{}"), ("device", "device", "{}"), ("seconds", "wall s", "{:.0f}"),
                       ("peak_rss_mib", "peak RSS MiB", "{:,}"), ("peak_gpu_mib", "peak GPU MiB", "{:,}")])
    for stage, s in report["stages"].items():
        print(f"  {stage}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in s.get("key_results", {}).items()))
    print(f"  total {report.get('total_seconds', 0):.0f}s -> {out_path(name)}")
    if not ok:
        raise SystemExit(1)
    return report


if __name__ == "__main__":
    main()
