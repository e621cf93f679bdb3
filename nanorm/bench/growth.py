"""
How the cost grows: each stage's time as one knob doubles, measured in one run, so a bigger run can be
predicted from a small one.

    python -m nanorm.bench.growth                      # ~9 minutes on 2 cores
    python -m nanorm.bench.growth --scale=0.25         # shorter runs, noisier ratios

Each stage runs a short base configuration, then the same with one knob doubled:

    sft  batch (64 -> 128 sequences), width (d_model 128 -> 256), depth (4 -> 8 layers)
    rm   prompts (ranked prompts x 2), K (4..9 -> 8..18 responses per prompt), width (a d_model 256 trunk)
    ppo  batch (64 -> 128 rollouts), width (policy, critic and RM of d_model 256)

Every run is a fresh process (nanorm/stages.py::run_in_child) and is timed by its own report: the training
seconds (SFT, PPO: the optimisation loop; RM: collection and training) and the wall seconds of the whole
stage. The d_model-256 checkpoints that the width rows need are made first (one SFT step, one RM step:
speed does not depend on the weights) and are not timed. A ratio near 2 means the cost is linear in that
knob; well below 2, that the knob was not the bottleneck (fixed costs, the evaluation); above 2, that it
grows faster (attention's T^2, or width: a Linear layer's cost is quadratic in d_model).
"""

import os
import sys
from dataclasses import asdict, dataclass

from nanorm import stages
from nanorm.bench.common import machine_info, print_table, write_json
from nanorm.config import get_device, parse_config


@dataclass
class GrowthConfig:
    scale: float = 1.0               # multiplies every base run's steps, prompts and iterations
    threads: int = 0                 # every run's --threads (0: torch's default)
    sft_ckpt: str = "out/sft/ckpt.pt"   # the default-size SFT model the RM and PPO runs start from
    rm_ckpt: str = "out/rm/ckpt.pt"     # the default-size RM the PPO runs optimise
    out_dir: str = "out/bench/growth"   # the runs' out_dirs


def base_runs(cfg):
    """{stage: the base flags} (short runs with the default model; the evaluations cut to a few prompts)."""
    n = lambda x: max(1, round(x * cfg.scale))   # noqa: E731
    return {
        "sft": {"max_iters": n(60), "warmup_iters": 5, "eval_interval": n(60), "n_eval_prompts": 16},
        "rm": {"sft_ckpt": cfg.sft_ckpt, "n_prompts": n(100), "n_eval_prompts": 16, "eval_interval": 10 ** 6},
        "ppo": {"sft_ckpt": cfg.sft_ckpt, "rm_ckpt": cfg.rm_ckpt, "n_iters": n(6), "eval_interval": 10 ** 6,
                "n_eval_prompts": 16, "n_test_prompts": 16, "best_of": 0, "sample_interval": 10 ** 6},
    }


def doubled(cfg, wide):
    """[(stage, what doubled, the flags changed)]; wide: the d_model 256 checkpoints."""
    base = base_runs(cfg)
    return [
        ("sft", "base", {}), ("sft", "batch x2", {"batch_size": 128}), ("sft", "width x2", {"n_embd": 256}),
        ("sft", "depth x2", {"n_layer": 8}),
        ("rm", "base", {}), ("rm", "prompts x2", {"n_prompts": 2 * base["rm"]["n_prompts"]}),
        ("rm", "K x2", {"k_min": 8, "k_max": 18}), ("rm", "width x2", {"sft_ckpt": wide["sft"]}),
        ("ppo", "base", {}), ("ppo", "batch x2", {"batch_size": 128}),
        ("ppo", "width x2", {"sft_ckpt": wide["sft"], "rm_ckpt": wide["rm"]}),
    ]


def timed(stage, flags, log_path):
    """Run a stage in a fresh process; (training seconds by its own report, wall seconds)."""
    child = stages.run_in_child(stage, log_path, **flags)
    report = child["report"]
    return report.get("train_seconds"), child["seconds"]


def main(argv):
    cfg = parse_config(GrowthConfig, argv)
    os.makedirs(cfg.out_dir, exist_ok=True)
    common = {"threads": cfg.threads, "device": "cpu"}
    print("making the d_model 256 checkpoints (not timed) ...", flush=True)
    wide = {"sft": f"{cfg.out_dir}/wide_sft/ckpt.pt", "rm": f"{cfg.out_dir}/wide_rm/ckpt.pt"}
    stages.run_in_child("sft", f"{cfg.out_dir}/wide_sft.log", out_dir=f"{cfg.out_dir}/wide_sft", n_embd=256,
                        max_iters=1, warmup_iters=1, n_eval_prompts=1, eval_interval=1, **common)
    stages.run_in_child("rm", f"{cfg.out_dir}/wide_rm.log", out_dir=f"{cfg.out_dir}/wide_rm", sft_ckpt=wide["sft"],
                        n_prompts=2, n_eval_prompts=2, **common)
    base, rows = base_runs(cfg), []
    for stage, what, change in doubled(cfg, wide):
        name = f"{stage}_{what.replace(' ', '_')}"
        flags = {**base[stage], **change, **common, "out_dir": f"{cfg.out_dir}/{name}"}
        train_s, wall_s = timed(stage, flags, f"{cfg.out_dir}/{name}.log")
        ref = next((r for r in rows if r["stage"] == stage and r["what"] == "base"), None)
        rows.append({"stage": stage, "what": what, "train_s": train_s, "wall_s": wall_s,
                     "train_ratio": train_s / ref["train_s"] if ref else 1.0,
                     "wall_ratio": wall_s / ref["wall_s"] if ref else 1.0,
                     "flags": {k: v for k, v in flags.items() if k != "out_dir"}})
        print(f"  {stage} {what:11s} train {train_s:6.1f}s ({rows[-1]['train_ratio']:.2f}x)  "
              f"wall {wall_s:6.1f}s ({rows[-1]['wall_ratio']:.2f}x)", flush=True)
    print("\nstage time as one knob doubles (ratio to the stage's base run, same process type, one run):")
    print_table(rows, [("stage", "stage", "{}"), ("what", "doubled", "{}"), ("train_s", "train s", "{:.1f}"),
                       ("train_ratio", "train ratio", "{:.2f}"), ("wall_s", "wall s", "{:.1f}"),
                       ("wall_ratio", "wall ratio", "{:.2f}")])
    write_json("growth", {"config": asdict(cfg), "machine": machine_info(get_device("cpu")), "rows": rows})
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
