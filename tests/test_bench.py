"""Smoke runs of the benchmarks (nanorm/bench/) on tiny sizes: they run and write the JSON they promise.
Nothing here is timed: speed claims are ratios the benchmarks measure, never assertions in a test."""

import json
import shutil

import pytest

from nanorm import world
from nanorm.bench import generation, gpu_config, growth, pipeline, reward_model, train_step


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))   # the benchmarks write $OUT/NAME.json


@pytest.mark.exercise("1.1", "2.1")
def test_train_step(tmp_path):
    train_step.main(["--device=cpu", "--threads=1", "--configs=default", "--batch=4", "--steps=2", "--warmup=1",
                     "--peak_n=128", "--data_prompts=20"])
    report = json.load(open(tmp_path / "train_step.json"))
    rows = report["results"][0]["rows"]
    assert [r["dtype"] for r in rows] == ["float32", "bfloat16"]
    for r in rows:
        assert r["achieved_flops"] > 0 and r["peak_matmul_flops"] > 0 and r["fraction_of_peak"] > 0
        assert r["final_loss"] > 0
    res = report["results"][0]
    # the formula, without its attention term, counts the same matmuls as FlopCounterMode
    assert res["flops_formula_without_attention_first_batch"] <= res["flops_counted_first_batch"] * 1.01
    assert res["flops_formula_first_batch"] >= res["flops_counted_first_batch"] * 0.99


@pytest.mark.exercise("1.1")
def test_generation(tmp_path):
    generation.main(["--device=cpu", "--threads=1", "--batch=2", "--new_tokens=4", "--batch_sizes=1,2",
                     "--repeats=1"])
    report = json.load(open(tmp_path / "generation.json"))
    assert report["speedup_cached_over_uncached"] > 0
    assert [r["batch"] for r in report["batch_scaling"]] == [1, 2]
    assert all(r["tokens_per_s"] > 0 for r in report["batch_scaling"])


@pytest.mark.exercise("1.1", "3.1", "3.2", "3.3", "3.4", "3.5")
def test_reward_model(tmp_path):
    reward_model.main(["--device=cpu", "--threads=1", "--n_prompts=3", "--prompts_per_batch=2", "--repeats=1"])
    report = json.load(open(tmp_path / "reward_model.json"))
    assert report["same_loss"] is True
    assert report["forward_ratio"] > 1 and report["time_ratio"] > 0
    assert report["scoring_responses_per_s"] > 0


@pytest.mark.exercise("1.1", "2.1")
def test_pipeline_runs_a_stage_and_reports_it(tmp_path):
    pipeline.main(["--stages=sft", f"--out_dir={tmp_path}/run", "--extra=--device=cpu --threads=1",
                   "--sft=--max_iters=2 --n_train_prompts=20 --n_eval_prompts=4 --n_layer=1 --n_head=2 --n_embd=32"])
    report = json.load(open(tmp_path / "pipeline.json"))
    sft = report["stages"]["sft"]
    assert sft["exit_status"] == 0 and sft["seconds"] > 0 and sft["peak_rss_mib"] > 0
    assert set(sft["key_results"]) == {"eos_rate", "gold_mean", "val_loss"}
    assert 0.0 <= sft["key_results"]["eos_rate"] <= 1.0

    # --resume: the same flags again read the finished stage back (its checkpoint is not rewritten) ...
    ckpt = tmp_path / "run" / "sft" / "ckpt.pt"
    written = ckpt.stat().st_mtime_ns
    pipeline.main(["--stages=sft", f"--out_dir={tmp_path}/run", "--extra=--device=cpu --threads=1", "--resume=true",
                   "--sft=--max_iters=2 --n_train_prompts=20 --n_eval_prompts=4 --n_layer=1 --n_head=2 --n_embd=32"])
    again = json.load(open(tmp_path / "pipeline.json"))["stages"]["sft"]
    assert again["resumed"] is True and ckpt.stat().st_mtime_ns == written
    assert again["seconds"] == sft["seconds"] and again["key_results"] == sft["key_results"]
    # ... and other flags are not that run (the pipeline would run them anew)
    from nanorm import stages
    same = dict(out_dir=f"{tmp_path}/run/sft", device="cpu", threads=1, max_iters=2, n_train_prompts=20,
                n_eval_prompts=4, n_layer=1, n_head=2, n_embd=32)
    assert pipeline.finished_run(stages.config("sft", **same)) == again["eval"]
    assert pipeline.finished_run(stages.config("sft", **{**same, "max_iters": 3})) is None
    # a checkout moved elsewhere: the default tokenizer's absolute path differs, the file does not
    moved = tmp_path / "elsewhere" / "world.tiktoken"
    moved.parent.mkdir()
    shutil.copyfile(stages.config("sft").tokenizer, moved)
    assert pipeline.finished_run(stages.config("sft", **same, tokenizer=str(moved))) == again["eval"]
    moved.write_bytes(moved.read_bytes()[:-10])                           # ... but not another tokenizer
    assert pipeline.finished_run(stages.config("sft", **same, tokenizer=str(moved))) is None


def test_gpu_config_asks_for_no_more_prompts_than_the_world_has():
    # it once asked for 583 test prompts after the world shrank to 544, and failed on its first GPU run
    size = {split: len(world.make_split(split)) for split in world.SPLITS}
    flags = gpu_config.FLAGS
    assert flags["sft"]["n_eval_prompts"] <= size["test"]      # train_sft.py samples test prompts at the end
    assert flags["rm"]["n_eval_prompts"] <= size["val"]        # train_rm.py holds out validation prompts
    assert flags["ppo"]["n_eval_prompts"] <= size["val"] and flags["ppo"]["n_test_prompts"] <= size["test"]


def test_growth_doubles_one_knob_at_a_time_and_divides_by_the_base(tmp_path, monkeypatch):
    cfg = growth.GrowthConfig(out_dir=str(tmp_path))
    base = growth.base_runs(cfg)
    rows = growth.doubled(cfg, {"sft": "W/sft.pt", "rm": "W/rm.pt"})
    assert [(s, w) for s, w, _ in rows if w == "base"] == [("sft", "base"), ("rm", "base"), ("ppo", "base")]
    for stage, what, change in rows:
        if what in ("batch x2", "prompts x2"):
            key = next(iter(change))
            assert change[key] == 2 * {**growth.stages.defaults(stage), **base[stage]}[key]
    assert dict((w, c) for s, w, c in rows if s == "rm")["K x2"] == {"k_min": 8, "k_max": 18}

    def fake_child(stage, log_path, **flags):   # a stage whose training time is its batch (or prompts) / 10
        full = {**growth.stages.defaults(stage), **flags}
        work = full["n_prompts"] if stage == "rm" else full["batch_size"]
        return {"report": {"train_seconds": work / 10}, "seconds": work / 10 + 1.0}
    monkeypatch.setattr(growth.stages, "run_in_child", fake_child)
    out = {(r["stage"], r["what"]): r for r in growth.main([f"--out_dir={tmp_path}"])}
    assert out[("sft", "batch x2")]["train_ratio"] == pytest.approx(2.0)         # 12.8 s / 6.4 s
    assert out[("sft", "batch x2")]["wall_ratio"] == pytest.approx(13.8 / 7.4)     # + 1 s each
    assert out[("rm", "prompts x2")]["train_ratio"] == pytest.approx(2.0)
    assert out[("ppo", "base")]["train_ratio"] == 1.0
    assert json.load(open(tmp_path / "growth.json"))["rows"][0]["what"] == "base"
