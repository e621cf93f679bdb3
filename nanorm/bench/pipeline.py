"""
The whole pipeline, timed: each stage's wall time, peak memory and key results.

    python -m nanorm.bench.pipeline --extra="--threads=1"      # the default (CPU) configuration
    python -m nanorm.bench.pipeline --config=gpu               # the GPU configuration (nanorm/bench/gpu_config.py)
    python -m nanorm.bench.pipeline --config=gpu --smoke --extra="--device=cpu"   # seconds: does the path run?

Runs the stages' main(cfg) (nanorm/stages.py), each in a fresh process of its own, chained through
their out_dirs (out/bench/pipeline_<config>/{sft,rm,ppo[,dpo]}: the stages' usual out/ folders are left
alone). Flags, later ones winning: the configuration's (none for default), --smoke's cuts, --extra (every
stage), then --sft / --rm / --ppo / --dpo (one stage each), e.g. --ppo="--n_iters=10".

--resume=true reads a stage back instead of running it when its out_dir already holds a finished run of
exactly the same flags (the checkpoint's config equals the one asked for, and eval.json is there): a
sweep that was stopped goes on where it stopped (nanorm/experiments/seeds.py). Its seconds are the ones
the earlier JSON recorded for it.

Peak memory: the stage process's own peak resident set (ru_maxrss), and on CUDA
torch.cuda.max_memory_allocated. The JSON is rewritten after every stage, so a run cut short still
leaves what it measured: $OUT/NAME.json if OUT is set, else out/bench/NAME.json.
"""

import json
import os
import shlex
import shutil
import sys
from dataclasses import asdict, dataclass

from nanorm import stages
from nanorm.bench import gpu_config
from nanorm.bench.common import machine_info, out_path, print_table, write_json
from nanorm.config import get_device, parse_config

@dataclass
class PipelineConfig:
    config: str = "default"            # default (each script's defaults) | gpu (nanorm/bench/gpu_config.py)
    smoke: bool = False                # cut the work to seconds (gpu_config.SMOKE): does the path run?
    extra: str = ""                    # flags for every stage, e.g. "--threads=1 --device=cpu"
    sft: str = ""                      # flags for train_sft.py alone
    rm: str = ""                       # flags for train_rm.py alone
    ppo: str = ""                      # flags for train_ppo.py alone, e.g. "--n_iters=10"
    dpo: str = ""                      # flags for train_dpo.py alone (add dpo to --stages to run it)
    stages: str = "sft,rm,ppo"         # the stages to run, in this order (sft,rm,ppo,dpo: DPO too)
    out_dir: str = ""                  # where the stages write (STAGE/ below it); empty = out/bench/NAME
    out: str = ""                      # the JSON's name; empty = pipeline[_gpu][_smoke]
    resume: bool = False               # read back a stage already finished with the same flags, not rerun it


def key_results(stage, ev):
    """The few numbers that say whether a stage worked, from its eval.json."""
    if stage == "sft":
        return {"eos_rate": ev.get("eos_rate"), "gold_mean": ev.get("gold_mean"), "val_loss": ev.get("val_loss")}
    if stage == "rm":
        return {"heldout_accuracy": ev.get("accuracy"), "gold_accuracy": ev.get("gold_accuracy"),
                "bayes_ceiling": ev.get("bayes_ceiling")}
    if stage == "dpo":
        dpo = ev.get("dpo", {})
        return {"win_rate_vs_sft": dpo.get("win_rate_vs_sft"), "win_rate_vs_ppo": dpo.get("win_rate_vs_ppo"),
                "gold_dpo": dpo.get("gold"), "kl": dpo.get("kl")}
    ppo, sft = ev.get("ppo", {}), ev.get("sft", {})
    bo = next((v for k, v in ev.items() if k.startswith("best_of_")), {})
    return {"win_rate_vs_sft": ppo.get("win_rate_vs_sft"), "gold_ppo": ppo.get("gold"), "gold_sft": sft.get("gold"),
            "kl": ppo.get("kl"), "best_of_n_win_rate": bo.get("win_rate_vs_sft")}


def finished_run(stage_cfg):
    """The report (eval.json) of a finished run of exactly this config in its out_dir, else None."""
    ckpt_path, eval_path = (os.path.join(stage_cfg.out_dir, f) for f in ("ckpt.pt", "eval.json"))
    if not (os.path.exists(ckpt_path) and os.path.exists(eval_path)):
        return None
    import torch
    saved, asked = torch.load(ckpt_path, map_location="cpu", weights_only=True).get("config") or {}, asdict(stage_cfg)
    if saved.keys() != asked.keys() or any(saved[k] != asked[k] and not (k == "tokenizer" and same_file(saved[k], v))
                                           for k, v in asked.items()):
        return None
    with open(eval_path, encoding="utf-8") as f:
        return json.load(f)


def same_file(saved, asked):
    """The tokenizer field holds an absolute path by default, so a checkout moved or cloned elsewhere names
    the same file differently: same name, and the same bytes where the saved path still exists."""
    if os.path.basename(saved) != os.path.basename(asked) or not os.path.exists(asked):
        return False
    if not os.path.exists(saved):
        return True
    with open(saved, "rb") as a, open(asked, "rb") as b:
        return a.read() == b.read()


def main(argv=None):
    flags = parse_config(PipelineConfig, sys.argv[1:] if argv is None else argv)
    if flags.config not in ("default", "gpu"):
        raise SystemExit(f"error: --config={flags.config}: expected default or gpu")
    name = flags.out or "pipeline" + ("_gpu" if flags.config == "gpu" else "") + ("_smoke" if flags.smoke else "")
    out_dir = flags.out_dir or os.path.join("out", "bench", name)
    stage_flags = gpu_config.FLAGS if flags.config == "gpu" else {"sft": {}, "rm": {}, "ppo": {}}
    chain = {"sft": [], "rm": [f"--sft_ckpt={out_dir}/sft/ckpt.pt"],
             "ppo": [f"--sft_ckpt={out_dir}/sft/ckpt.pt", f"--rm_ckpt={out_dir}/rm/ckpt.pt"],
             "dpo": [f"--sft_ckpt={out_dir}/sft/ckpt.pt", f"--rm_dir={out_dir}/rm", f"--ppo_ckpt={out_dir}/ppo/ckpt.pt"]}
    report = {"config": flags.config, "smoke": flags.smoke, "flags": asdict(flags), "out_dir": out_dir,
              "machine": machine_info(get_device("cpu")), "stages": {}}
    try:   # which accelerator the scripts will pick (they choose for themselves, like a user's run)
        import torch
        report["machine"]["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception as e:   # noqa: BLE001 - a description only
        report["machine"]["gpu"] = repr(e)
    earlier = {}   # --resume: the stages of this JSON's previous run (their seconds)
    if flags.resume and os.path.exists(out_path(name)):
        with open(out_path(name), encoding="utf-8") as f:
            earlier = json.load(f).get("stages", {})
    ok = True
    for stage in flags.stages.split(","):
        cfg = {**stage_flags.get(stage, {}), **(gpu_config.SMOKE.get(stage, {}) if flags.smoke else {})}
        args = [f"--out_dir={out_dir}/{stage}", *chain[stage], *(f"--{k}={v}" for k, v in cfg.items()),
                *shlex.split(flags.extra), *shlex.split(getattr(flags, stage))]
        stage_cfg = parse_config(type(stages.config(stage)), args)   # read as the script's command line
        log_path = os.path.join(out_dir, f"{stage}.log")
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        result = {"command": f"python train_{stage}.py " + " ".join(args)}
        done = finished_run(stage_cfg) if flags.resume else None
        if done is not None:   # the seconds of the run that made it, when this JSON recorded them
            before = earlier.get(stage, {})
            result.update({**{k: before.get(k) for k in ("seconds", "device", "peak_rss_mib", "peak_gpu_mib")
                              if before.get("command") == result["command"]},
                           "exit_status": 0, "resumed": True, "eval": done, "key_results": key_results(stage, done)})
            print(f"[{stage}] already finished with these flags in {stage_cfg.out_dir}: read back", flush=True)
        else:
            open(log_path, "w").close()
            print(f"[{stage}] python train_{stage}.py {' '.join(args)}", flush=True)
            try:
                child = stages.run_in_child(stage, log_path, **asdict(stage_cfg))
                result.update({"exit_status": 0, "seconds": round(child["seconds"], 1), "device": child["device"],
                               "peak_rss_mib": round(child["peak_rss_mib"]), "peak_gpu_mib": child["peak_gpu_mib"]
                               and round(child["peak_gpu_mib"]), "eval": child["report"],
                               "key_results": key_results(stage, child["report"])})
            except stages.StageFailed as e:
                result.update({"exit_status": 1, "seconds": 0.0, "log_tail": str(e)[-3000:]})
                ok = False
            if os.environ.get("OUT"):
                shutil.copy(log_path, os.path.join(os.environ["OUT"], f"{name}_{stage}.log"))
        report["stages"][stage] = result
        report["total_seconds"] = round(sum(s.get("seconds") or 0 for s in report["stages"].values()), 1)
        write_json(name, report)   # after every stage: a run cut short keeps what it measured
        print(f"[{stage}] exit {result['exit_status']} after {result.get('seconds') or 0:.0f}s; key results: "
              f"{result.get('key_results')}", flush=True)
        if not ok:
            print(result["log_tail"])
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
