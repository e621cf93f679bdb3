"""The seed sweep's ranges (nanorm/experiments/seeds.py) and the student's check against them
(nanorm/ontrack.py), on hand-made results: no stage is run here (test_bench.py runs the pipeline's
--resume, which the sweep relies on)."""

import json
import math

import pytest
import torch

from nanorm import ontrack
from nanorm.experiments import seeds


def fake_results(sft_gold, rm_acc, ppo_gold, sft_gold_in_ppo=0.2):
    return {"sft": {"gold_mean": sft_gold, "val_loss": 0.5},
            "rm": {"accuracy": rm_acc, "inter_labeler_agreement": 0.75},
            "ppo": {"ppo": {"win_rate_vs_sft": 0.6, "gold": ppo_gold, "kl": 1.5},
                    "sft": {"gold": sft_gold_in_ppo}}}


def test_lookup_reads_paths_and_differences():
    r = fake_results(0.2, 0.6, 0.35)
    assert seeds.lookup(r, "rm/accuracy") == 0.6
    assert seeds.lookup(r, "ppo/ppo/gold - ppo/sft/gold") == pytest.approx(0.15)
    assert seeds.lookup(r, "dpo/dpo/kl") is None                    # a stage that did not run
    assert seeds.lookup(r, "ppo/best_of_16/win_rate_vs_sft") is None


def test_ranges_hand_worked():
    per_seed = {1337: fake_results(0.1, 0.60, 0.4), 1: fake_results(0.2, 0.62, 0.5), 2: fake_results(0.3, 0.64, 0.3)}
    table = seeds.ranges(per_seed)
    g = table["sft.gold"]
    assert g["per_seed"] == {1337: 0.1, 1: 0.2, 2: 0.3}
    assert g["mean"] == pytest.approx(0.2) and g["min"] == 0.1 and g["max"] == 0.3 and g["n"] == 3
    assert g["sd"] == pytest.approx(0.1)                             # sqrt((0.01 + 0 + 0.01) / 2)
    gain = table["ppo.gold_gain"]                                    # 0.4-0.2, 0.5-0.2, 0.3-0.2
    assert gain["mean"] == pytest.approx(0.2) and gain["sd"] == pytest.approx(0.1)
    assert "dpo.win_rate" not in table                               # no seed has it
    assert seeds.summarise([0.5])["sd"] == 0.0


def test_every_figure_has_a_hint_each_way():
    assert set(ontrack.HINTS) == set(seeds.FIGURES)
    assert all(len(h) == 2 and all(h) for h in ontrack.HINTS.values())


def test_verdict_widens_min_max_to_three_sd():
    r = {"mean": 0.6, "sd": 0.01, "min": 0.59, "max": 0.61}
    assert ontrack.verdict(0.625, r) == "in range"                   # past max, inside mean + 3 sd
    assert ontrack.verdict(0.631, r) == "high" and ontrack.verdict(0.569, r) == "low"
    narrow = {"mean": 0.6, "sd": 0.0, "min": 0.5, "max": 0.7}        # min..max wider than 3 sd
    assert ontrack.verdict(0.52, narrow) == "in range" and ontrack.verdict(0.49, narrow) == "low"


def published(tmp_path):
    per_seed = {1337: fake_results(0.20, 0.60, 0.35), 1: fake_results(0.22, 0.62, 0.37)}
    path = tmp_path / "ranges.json"
    path.write_text(json.dumps({"seeds": [1337, 1], "figures": seeds.ranges(per_seed)}))
    return path


def write_stage(folder, report, config=None):
    folder.mkdir(parents=True)
    (folder / "eval.json").write_text(json.dumps(report))
    if config is not None:
        torch.save({"kind": "x", "state_dict": {}, "config": config}, folder / "ckpt.pt")


def test_ontrack_says_which_figure_is_off_and_why(tmp_path, capsys):
    from nanorm import stages
    out = tmp_path / "out"
    write_stage(out / "sft", {"gold_mean": 0.21, "val_loss": 0.5}, stages.defaults("sft"))
    write_stage(out / "rm", {"accuracy": 0.40, "inter_labeler_agreement": 0.75},
                {**stages.defaults("rm"), "out_dir": "elsewhere", "seed": 7})      # neutral flags only
    rows = ontrack.main([f"--out={out}", f"--ranges={published(tmp_path)}"])
    got = {r["figure"]: r["verdict"] for r in rows}
    assert got["sft.gold"] == "in range" and got["rm.agreement"] == "in range"
    assert got["rm.accuracy"] == "low" and "ppo.win_rate" not in got                 # PPO has not run
    text = capsys.readouterr().out
    assert ontrack.HINTS["rm.accuracy"][0] in text and "note:" not in text


def test_ontrack_notes_a_run_with_other_flags(tmp_path, capsys):
    from nanorm import stages
    out = tmp_path / "out"
    write_stage(out / "sft", {"gold_mean": 0.21, "val_loss": 0.5}, {**stages.defaults("sft"), "max_iters": 50})
    ontrack.main([f"--out={out}", f"--ranges={published(tmp_path)}"])
    assert "ran with --max_iters=50" in capsys.readouterr().out


def test_ontrack_refuses_an_empty_folder_and_missing_ranges(tmp_path):
    with pytest.raises(SystemExit, match="no finished stage"):
        ontrack.main([f"--out={tmp_path}", f"--ranges={published(tmp_path)}"])
    with pytest.raises(SystemExit, match="not found"):
        ontrack.main([f"--out={tmp_path}", f"--ranges={tmp_path}/missing.json"])


def test_the_sweep_aggregates_seeds_and_reuses_a_finished_headroom_table(tmp_path, monkeypatch):
    calls = {"pipeline": [], "headroom": 0}

    def fake_pipeline(argv):
        calls["pipeline"].append(argv)
        seed = int([a for a in argv if a.startswith("--extra=")][0].split("=")[-1])
        return {"stages": {s: {"eval": r, "seconds": 1.0} for s, r in fake_results(seed / 10, 0.6, 0.4).items()}}

    def fake_headroom(argv):
        calls["headroom"] += 1
        from nanorm.config import parse_config
        from dataclasses import asdict
        res = {"config": asdict(parse_config(seeds.headroom.HeadroomConfig, argv)),
               "win_rate_vs_sft": {"gold": {"all": 0.8}}}
        path = [a for a in argv if a.startswith("--out=")][0][6:]
        open(path, "w").write(json.dumps(res))
        return res

    monkeypatch.setattr(seeds.pipeline, "main", fake_pipeline)
    monkeypatch.setattr(seeds.headroom, "main", fake_headroom)
    for seed in (1, 3):
        (tmp_path / f"seed_{seed}").mkdir()
    res = seeds.main(["--seeds=1,3", f"--out_dir={tmp_path}"])
    assert [a for a in calls["pipeline"][0] if "seed" in a] == [f"--out_dir={tmp_path}/seed_1", "--out=seeds_1",
                                                               "--extra=--seed=1"]
    assert "--resume=true" in calls["pipeline"][0]
    assert res["figures"]["sft.gold"]["mean"] == pytest.approx(0.2)
    assert res["figures"]["headroom.gold"]["per_seed"] == {1: 0.8, 3: 0.8}
    assert json.load(open(tmp_path / "ranges.json"))["seeds"] == [1, 3]
    seeds.main(["--seeds=1,3", f"--out_dir={tmp_path}"])            # again: the headroom tables are read back
    assert calls["headroom"] == 2
    with pytest.raises(SystemExit, match="listed twice"):
        seeds.main(["--seeds=1,1", f"--out_dir={tmp_path}"])
    assert not math.isnan(res["stage_seconds_total"])
