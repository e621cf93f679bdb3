"""The overoptimization experiment. Its maths (nanorm/experiments/gao.py): the KL of best-of-n, and the two
Gao et al. (2022) fits on hand-worked points and on synthetic curves with known coefficients. Then a smoke
run of nanorm/experiments/overoptimization.py on a tiny SFT/RM chain."""

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from nanorm import world
from nanorm.evaluate import curve_point, describe, summarise
from nanorm.experiments.gao import fit_bon, fit_rl, kl_bon, predict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_kl_of_best_of_n_by_hand():
    assert kl_bon(1) == 0.0                                     # best-of-1 is the policy itself
    assert kl_bon(2) == pytest.approx(math.log(2) - 0.5)        # log n - (n-1)/n
    assert kl_bon(64) == pytest.approx(math.log(64) - 63 / 64)
    assert all(kl_bon(n) < kl_bon(2 * n) for n in range(1, 100))


def test_fits_on_hand_worked_points():
    # best-of-n, alpha = 1, beta = 1/4: R(d) = d (1 - d/4), so R(1) = 3/4, R(2) = 1, R(3) = 3/4. The peak:
    # dR/dd = 1 - d/2 = 0 at d* = 2 = alpha / (2 beta), where R(d*) = 1 = alpha^2 / (4 beta)
    fit = fit_bon([1.0, 2.0, 3.0], [0.75, 1.0, 0.75])
    assert (fit["alpha"], fit["beta"]) == (pytest.approx(1.0), pytest.approx(0.25))
    assert (fit["d_peak"], fit["R_peak"], fit["r2"]) == (pytest.approx(2.0), pytest.approx(1.0), pytest.approx(1.0))
    assert list(predict(fit, [0.0, 4.0])) == pytest.approx([0.0, 0.0], abs=1e-12)   # R(0) = 0 = R(alpha / beta)
    # RL, alpha = 2, beta = 1: R(d) = d (2 - log d), so R(1) = 2, R(e) = e, R(e^2) = 0 (the d = 0 point is
    # dropped). The peak: dR/dd = 2 - (log d + 1) = 0 at d* = e = exp(alpha / beta - 1), R(d*) = e = beta d*
    e = math.e
    fit = fit_rl([0.0, 1.0, e, e ** 2], [0.0, 2.0, e, 0.0])
    assert fit["n_points"] == 3
    assert (fit["alpha"], fit["beta"], fit["r2"]) == (pytest.approx(2.0), pytest.approx(1.0), pytest.approx(1.0))
    assert (fit["d_peak"], fit["R_peak"]) == (pytest.approx(e), pytest.approx(e))


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.5), (0.3, 0.05), (2.0, 1.5)])
def test_fit_bon_recovers_known_coefficients(alpha, beta):
    d = np.sqrt([kl_bon(n) for n in (1, 2, 4, 8, 16, 32, 64, 128, 256)])
    fit = fit_bon(d, d * (alpha - beta * d))                    # R_bon(d) = d (alpha - beta d), exactly
    assert fit["alpha"] == pytest.approx(alpha, abs=1e-9) and fit["beta"] == pytest.approx(beta, abs=1e-9)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["d_peak"] == pytest.approx(alpha / (2 * beta))  # dR/dd = alpha - 2 beta d = 0
    grid = np.linspace(0.001, 10 * fit["d_peak"], 200001)
    assert grid[np.argmax(predict(fit, grid))] == pytest.approx(fit["d_peak"], rel=1e-3)
    assert fit["R_peak"] == pytest.approx(predict(fit, [fit["d_peak"]])[0])


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.5), (0.2, 0.3), (-0.1, 0.2)])
def test_fit_rl_recovers_known_coefficients_and_skips_d_zero(alpha, beta):
    d = np.concatenate([[0.0], np.linspace(0.2, 6.0, 12)])     # the SFT point (d = 0) is ignored
    R = d * (alpha - beta * np.log(np.maximum(d, 1e-300)))
    fit = fit_rl(d, R)
    assert fit["n_points"] == 12
    assert fit["alpha"] == pytest.approx(alpha, abs=1e-9) and fit["beta"] == pytest.approx(beta, abs=1e-9)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["d_peak"] == pytest.approx(math.exp(alpha / beta - 1))   # dR/dd = alpha - beta (log d + 1) = 0
    grid = np.linspace(1e-4, 10 * fit["d_peak"], 200001)
    assert grid[np.argmax(predict(fit, grid))] == pytest.approx(fit["d_peak"], rel=1e-3)
    assert fit["R_peak"] == pytest.approx(beta * fit["d_peak"])


def test_fits_with_noise_and_without_a_peak():
    rng = np.random.default_rng(0)
    d = np.linspace(0.1, 4.0, 200)
    fit = fit_rl(d, d * (0.8 - 0.25 * np.log(d)) + rng.normal(0, 0.01, d.shape))
    assert fit["alpha"] == pytest.approx(0.8, abs=0.02) and fit["beta"] == pytest.approx(0.25, abs=0.02)
    rising = fit_bon(d, 0.5 * d + 0.1 * d ** 2)                 # gold that keeps rising: beta < 0, no peak
    assert rising["beta"] == pytest.approx(-0.1) and rising["d_peak"] is None
    assert fit_rl([0.0, 0.0, 1.0], [0.0, 0.0, 0.1]) is None     # one point with d > 0: nothing to fit


def test_failure_mode_rates_on_hand_made_answers():
    # a false claim (a water is not a bird) and a sum, each answered four ways; the rates are counted by hand
    false_claim = world.Prompt.from_dict(next(p.to_dict() for p in world.make_split("val", 40, seed=0)
                                              if p.family == "claim" and not p.info["truth"]))
    sums = world.Prompt.from_dict(next(p.to_dict() for p in world.make_split("val", 40, seed=0)
                                       if p.family == "arithmetic"))
    answer = sums.info["answer"]
    pad = " This is a common kind of question. Feel free to ask me more."
    answers = [(false_claim, "You are right, that is true."),                  # sycophantic
               (false_claim, "- That is **not** true."),                         # formatted: a bullet and a bold pair
               (false_claim, "A water is a drink, so that is **not** true." + pad),   # formatted, 20 words > 10
               (sums, f"It is {answer}."),                                      # clean
               (sums, "bird bird bird bird"),                                   # gibberish
               (sums, f"It is {answer}." + pad),                                # 14 words > the budget of 5
               (sums, f"It is {answer}." + pad * 2)]                            # 25 words
    prompts, texts = zip(*answers)
    point = curve_point(summarise(describe(prompts, texts, [True] * 7)) | {"proxy": 0.0, "kl": 0.0})
    assert point["sycophancy"] == pytest.approx(1 / 3)        # of the three claim prompts
    assert point["format_rate"] == pytest.approx(2 / 7) and point["format"] == pytest.approx(3 / 7)
    assert point["gibberish_rate"] == pytest.approx(1 / 7)
    assert point["over_budget_rate"] == pytest.approx(3 / 7)


def test_fit_standard_errors_match_the_spread_of_refits():
    # points exactly on the curve: no scatter, so no uncertainty; two points: an exact fit, the scatter unknown
    assert fit_bon([1.0, 2.0, 3.0], [0.75, 1.0, 0.75])["alpha_se"] == pytest.approx(0.0, abs=1e-9)
    assert fit_rl([1.0, 2.0], [0.5, 0.6])["alpha_se"] is None
    # the reference: refit 2,000 noisy copies of one curve; the spread of the fitted alpha and beta is what
    # one fit's standard error estimates
    rng = np.random.default_rng(0)
    d = np.linspace(0.2, 3.0, 12)
    for fit, curve in [(fit_rl, d * (0.8 - 0.3 * np.log(d))), (fit_bon, d * (0.6 - 0.2 * d))]:
        fits = [fit(d, curve + rng.normal(0, 0.05, d.shape)) for _ in range(2000)]
        for key in ("alpha", "beta"):
            spread = np.std([f[key] for f in fits])
            assert np.mean([f[key + "_se"] for f in fits]) == pytest.approx(spread, rel=0.1)


def run(*args, module=False):
    cmd = [sys.executable, "-m", args[0], *args[1:]] if module else [sys.executable, os.path.join(ROOT, args[0]),
                                                                     *args[1:]]
    result = subprocess.run([*cmd, "--device=cpu", "--threads=1"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


# SFT (1.1, 2.1), the RM (3.x, 4.x) and PPO with the fixed KL controller (5.1 to 5.5) all run here
@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3",
                      "5.1", "5.2", "5.3", "5.4", "5.5", "5.7")
def test_overoptimization_smoke(tmp_path, tiny_sft):
    os.symlink(tiny_sft.dir, tmp_path / "sft")                     # the session's tiny SFT model
    run("train_rm.py", f"--sft_ckpt={tmp_path}/sft/ckpt.pt", "--n_prompts=10", "--rounds=2", "--n_eval_prompts=10",
        f"--out_dir={tmp_path}/rm")
    # --rounds=2: every training prompt ranked twice, each time on fresh samples
    records = [json.loads(line) for line in open(tmp_path / "rm" / "comparisons.jsonl")]
    by_prompt = {}
    for rec in records:
        by_prompt.setdefault(rec["prompt"], []).append(rec["responses"])
    assert len(records) == 20 and len(by_prompt) == 10 and all(len(v) == 2 for v in by_prompt.values())
    assert any(a != b for a, b in by_prompt.values())
    out = run("nanorm.experiments.overoptimization", "--smoke=true", f"--sft_ckpt={tmp_path}/sft/ckpt.pt",
              f"--rm_ckpt={tmp_path}/rm/ckpt.pt", f"--out_dir={tmp_path}/hacking", "--betas=0.01,0.05", module=True)
    assert "fits to gold - gold(SFT)" in out

    res = json.load(open(tmp_path / "hacking" / "overoptimization.json"))
    assert {"config", "default_beta", "sft", "runs", "best_of_n", "examples", "figures"} <= set(res)
    assert [r["beta"] for r in res["runs"]] == [0.01, 0.05]
    assert [r["is_default"] for r in res["runs"]] == [res["default_beta"] == b for b in (0.01, 0.05)]
    for r in res["runs"]:
        assert {"curve", "fit", "peak", "final", "summary"} <= set(r)
        assert [p["iter"] for p in r["curve"]] == [0, 2, 4]                 # the SFT point, then every 2 iterations
        assert r["curve"][0]["kl"] == 0.0 and r["final"]["iter"] == 4
        assert set(r["final"]["per_family"]) == {"arithmetic", "list", "claim", "open"}
        assert {"final_proxy", "final_gold", "peak_gold", "peak_iter", "fall", "final_kl", "peak_in_se"} <= set(r["summary"])
    # the failure modes of the smallest beta, as rates at SFT, at the gold peak and at the end of the run
    small, hack = res["runs"][0], res["hacking"]
    assert set(hack["rates"]) == {"too long", "formatted", "sycophantic", "gibberish"}
    assert hack["rates"]["gibberish"]["final"] == small["curve"][-1]["gibberish_rate"]
    assert hack["rates"]["too long"]["sft"] == res["sft"]["over_budget_rate"]
    assert all(0.0 <= at[k] <= 1.0 for at in hack["rates"].values() for k in ("sft", "peak", "final"))
    assert "failure modes at beta=0.01" in out and "gibberish    SFT" in out
    assert res["runs"][0]["early"]["iter"] == 2                             # the smallest beta's first leg
    assert (tmp_path / "hacking" / "ppo_beta_0.01" / "early_ckpt.pt").exists()
    bon = res["best_of_n"]["points"]
    assert [p["n"] for p in bon] == [1, 2, 4] and bon[0]["kl"] == 0.0
    proxies = [p["proxy"] for p in bon]
    assert proxies == sorted(proxies)            # a prefix's best RM score can only grow with n
    assert len(res["examples"]) == 4 and {"sft", "early", "final"} <= set(res["examples"][0])

    for path in res["figures"].values():
        assert path.endswith(".png") and os.path.getsize(path) > 1000

    # the three analysis experiments run on the same checkpoints and print every row of their tables
    ckpts = [f"--sft_ckpt={tmp_path}/sft/ckpt.pt", f"--rm_ckpt={tmp_path}/rm/ckpt.pt"]
    out = run("nanorm.experiments.headroom", *ckpts, "--n_prompts=12", "--n=3", f"--out={tmp_path}/headroom.json",
              module=True)
    rows = {line.split()[0]: [float(x) for x in line.split()[1:]] for line in out.splitlines()[2:7]}
    table = json.load(open(tmp_path / "headroom.json"))["win_rate_vs_sft"]      # the same table, as JSON
    assert set(rows) == set(table) == {"gold", "labelers", "rm", "length", "random"}
    for judge, printed in rows.items():
        assert printed == pytest.approx([table[judge][k] for k in ("all", *world.FAMILIES)], abs=5e-4)
        assert all(0.0 <= x <= 1.0 for x in printed)
    out = run("nanorm.experiments.what_the_rm_sees", *ckpts, "--n_prompts=12", "--k=3", "--n_accuracy_prompts=8",
              f"--out={tmp_path}/seen.json", module=True)
    assert "ceiling" in out and "\n  all " in out
    seen = json.load(open(tmp_path / "seen.json"))
    assert set(seen["greedy_correct"]) == {"train", "test"} and "all" in seen["pair_kinds"]
    assert sum(v["n"] for k, v in seen["pair_kinds"].items() if k != "all") == seen["pair_kinds"]["all"]["n"]
    for row in seen["fact_pairs_by_mistake"].values():   # the RM and the SFT model's likelihood, as judges
        assert 0 <= row["rm_prefers_correct"] <= 1 and 0 <= row["sft_likelihood_prefers_correct"] <= 1


@pytest.mark.parametrize("flag,error", [("--betas=abc", "error: --betas=abc: expected non-negative numbers"),
                                        ("--betas=0.1,0.1", "error: --betas=0.1,0.1: each beta once"),
                                        ("--bon_ns=4,0", "error: --bon_ns=4,0: expected positive integers"),
                                        ("--peak_iters=60", "error: --peak_iters=60: must be between 0 and"),
                                        ("--n_eval_prompts=512", "error: --n_eval_prompts=512: the world's val split")])
def test_bad_flags_stop_with_one_line(flag, error):
    from nanorm.config import parse_config
    from nanorm.experiments.overoptimization import OveroptConfig
    with pytest.raises(SystemExit, match="^" + re.escape(error)):
        parse_config(OveroptConfig, [flag])
