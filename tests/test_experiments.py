"""The analysis experiments' own logic, on hand-made responses (their smoke runs are in test_overoptimization.py)."""

import json
import math
import random
import re
from collections import Counter

import numpy as np
import pytest
import torch

from nanorm import world
from nanorm.world import minimal_edit
from nanorm.experiments.headroom import judge_scores, win_rates
from nanorm.experiments.what_the_rm_sees import claim_directions, mistake_kind
from nanorm.prefdata import Comparison, load_comparisons
from nanorm.reward import kwise_pairs


def prompt(text):
    return next(p for p in world.all_prompts() if p.text == text)


CORRECT = "6."
PADDED = "4 plus 2 is 6. I hope this helps. Let me know if you have any other questions."
LONG_WRONG = "4 plus 2 is 7. I hope this helps. Let me know if you have any other questions. Sure."


def test_each_judge_picks_its_favourite_and_gold_judges_the_pick():
    p = prompt("What is 4 plus 2?")
    labelers = world.make_labelers(8, seed=1337)[:-2]
    cands = [CORRECT, PADDED, LONG_WRONG]
    # gold: 1.0 for the bare answer, 1 - 0.04 * 13 for the padded one (18 words, budget 5), below -0.3 for
    # the wrong one; the labelers like the padding less than its gold cost (0.02 a word against 0.04);
    # length is length
    assert world.gold(p, CORRECT) == 1.0 and world.gold(p, PADDED) == pytest.approx(0.48)
    assert judge_scores("length", p, cands, [True] * 3) == [1, 18, 19]
    lab = judge_scores("labelers", p, cands, [True] * 3, labelers)
    assert lab[0] > lab[1] > lab[2]

    # against a wrong baseline every correct pick wins; the longest (wrong, padded) answer loses
    wins = win_rates([p], [cands], [[True] * 3], ["5."], [True], labelers, [[0.1, 0.5, 0.2]])
    assert wins == {"gold": [1.0], "labelers": [1.0], "rm": [1.0], "length": [0.0]}
    # against the bare correct answer: gold and the labelers can only tie; the RM's scores tie at the top
    # and the first candidate is taken; the RM that prefers the padded answer loses
    wins = win_rates([p], [cands], [[True] * 3], [CORRECT], [True], labelers, [[0.9, 0.1, 0.9]])
    assert wins == {"gold": [0.5], "labelers": [0.5], "rm": [0.5], "length": [0.0]}
    wins = win_rates([p], [cands], [[True] * 3], [CORRECT], [True], labelers, [[0.1, 0.9, 0.2]])
    assert wins["rm"] == [0.0]


def test_a_truncated_candidate_is_judged_as_truncated():
    p = prompt("What is 4 plus 2?")
    # the bare answer hit the length limit without end-of-text: gold takes 1.0 off it
    assert judge_scores("gold", p, [PADDED, CORRECT], [True, False]) == [pytest.approx(0.48), 0.0]
    with pytest.raises(ValueError, match="unknown judge"):
        judge_scores("vibes", p, [CORRECT], [True])


def test_mistake_kind_splits_the_wrong_answers():
    arith, note = prompt("What is 4 plus 2?"), next(p for p in world.all_prompts() if p.family == "open")
    assert mistake_kind(arith, "5.") == "arithmetic: number only"
    assert mistake_kind(arith, "4 plus 2 is **5**.") == "arithmetic: states 'a op b is c'"
    other = next(n for n in world.NAMES if n != note.info["name"])
    assert mistake_kind(note, f"Happy birthday, {other}!") == "open: another name"
    assert mistake_kind(note, f"Happy birthday, {note.info['name']}!") == "open: wrong occasion, or no note"
    assert mistake_kind(prompt("Name three fruits."), "apple, apple, apple.") == "list: any"


def test_minimal_edit_changes_one_fact_and_makes_the_answer_wrong():
    rng = random.Random(0)
    arith, fruits = prompt("What is 4 plus 2?"), prompt("Name two fruits.")
    claim, note = prompt("I think 0 is more than 1. Am I right?"), prompt("Write a short greeting for my friend Sam.")
    for p, text, keep in [(arith, "4 plus 2 is 6.", "4 plus 2 is "),              # only the answer changes
                          (claim, "0 is less than 1, so you are wrong.", "0 is less than 1, so you are "),
                          (note, "Hello, Sam! It is great to see you.", "Hello, "),
                          (fruits, "Apple and pear.", None)]:
        assert world.features(p, text)["correct"]
        for _ in range(20):
            edited = minimal_edit(p, text, rng)
            assert not world.features(p, edited)["correct"]
            assert len(world.words(edited)) == len(world.words(text))          # one word swapped, no more
            assert sum(a != b for a, b in zip(world.words(edited), world.words(text))) == 1
            if keep:
                assert edited.startswith(keep)
    assert minimal_edit(claim, "0 is less than 1, so you are wrong.", rng) == "0 is less than 1, so you are right."
    edited = minimal_edit(fruits, "Apple and pear.", rng)                        # an item of another category
    assert {world.ITEM_TO_CATEGORY[w.lower()] for w in world.words(edited) if w.lower() in world.ITEM_TO_CATEGORY} \
        != {"fruits"}
    assert minimal_edit(arith, "I do not know.", rng) is None                  # nothing to change


def test_claim_pairs_split_by_the_edits_direction():
    # user wrong (0 > 1): the correct answer disagrees, its edit agrees; user right (1 > 0): the reverse
    wrong_user, right_user = prompt("I think 0 is more than 1. Am I right?"), prompt("I think 1 is more than 0. Am I right?")
    arith = prompt("What is 4 plus 2?")
    pairs = [(wrong_user, "0 is less than 1, so you are wrong.", "0 is less than 1, so you are right."),
             (wrong_user, "0 is less than 1, so you are wrong.", "0 is less than 1, so you are right."),
             (right_user, "1 is more than 0, so you are right.", "1 is more than 0, so you are wrong."),
             (arith, "6.", "7.")]                                                # not a claim: left out
    got = claim_directions(pairs, [False, True, True, False])
    assert got == {"edit_agrees": {"n": 2, "rm": 0.5}, "edit_disagrees": {"n": 1, "rm": 1.0}}
    assert claim_directions(pairs[3:], [True]) == {}


def test_headroom_on_demonstrations_needs_no_model(tmp_path):
    """--candidates=demonstrations: the world's own demonstrations, no checkpoint; gold's pick is the best
    any judge can do, a random pick sits near 1/2, and the labelers' share of gold's headroom is reported."""
    from nanorm.experiments import headroom
    res = headroom.main(["--candidates=demonstrations", "--n_prompts=40", "--n=4", f"--out={tmp_path}/h.json"])
    wr = res["win_rate_vs_sft"]
    assert set(wr) == {"gold", "labelers", "length", "random"}           # no RM judge without a model
    assert all(wr["gold"]["all"] >= wr[j]["all"] for j in wr)
    assert res["labelers_share_of_gold_headroom"] == pytest.approx(
        (wr["labelers"]["all"] - 0.5) / (wr["gold"]["all"] - 0.5))
    assert json.load(open(tmp_path / "h.json"))["win_rate_vs_sft"] == wr


@pytest.mark.exercise("3.4")
def test_pair_batching_splits_a_ranking_into_its_pairs():
    from nanorm.experiments.pair_batching import as_pair_records
    rec = Comparison("q", ["a", "b", "c"], [2, 0, 1], labeler=3, meta={"finished": [True, False, True]})
    pairs = as_pair_records([rec])
    assert [(p.responses, p.ranking, p.finished) for p in pairs] == [
        (["c", "a"], [0, 1], [True, True]), (["c", "b"], [0, 1], [True, False]), (["a", "b"], [0, 1], [True, False])]


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3")
def test_pair_batching_smoke(tmp_path, tiny_rm):
    from nanorm.experiments.pair_batching import main
    res = main([f"--comparisons={tiny_rm.dir}/comparisons.jsonl", f"--eval_comparisons={tiny_rm.dir}/eval_comparisons.jsonl",
                f"--sft_ckpt={tiny_rm.flags['sft_ckpt']}", f"--out_dir={tmp_path}", "--n_prompts=4", "--epochs=2",
                "--evals_per_epoch=1", "--prompts_per_batch=2", "--threads=1"])
    kwise, shuffled = res["runs"]
    assert shuffled["examples"] == res["n_pairs"] and kwise["examples"] == 4 == res["n_prompts"]
    assert kwise["steps"] == shuffled["steps"] == 2 * 2                     # the same steps an epoch: 4 prompts / 2
    assert shuffled["forwards"] == 2 * 2 * res["n_pairs"]                    # two forwards a pair, two epochs
    assert [p["epoch"] for p in kwise["curve"]] == pytest.approx([0, 1, 2], abs=1e-9)
    assert kwise["curve"][0] == shuffled["curve"][0]                         # the same start: the SFT trunk
    assert json.load(open(tmp_path / "pair_batching.json"))["n_pairs"] == res["n_pairs"]
    assert (tmp_path / "pair_batching.png").stat().st_size > 1000


class _FixedLabeler:
    """A labeler stand-in whose utilities are given and whose noise is zero."""
    id, temperature = 0, 0.0

    def __init__(self, utilities):
        self.utilities = utilities

    def utility(self, prompt, text, finished=True):
        return self.utilities[text]


def test_scores_and_rankings_are_one_reading_of_the_same_utilities():
    import random
    from nanorm.experiments.scores_vs_rankings import label_both_ways
    prompt = world.make_split("train", 1)[0]
    rec = Comparison(prompt.text, ["a", "b", "c", "d"], [0, 1, 2, 3], 0,
                     {"world_prompt": prompt.to_dict(), "finished": [True] * 4})
    lab = _FixedLabeler({"a": 0.1, "b": 1.0, "c": -2.0, "d": 0.5})
    # noise-free: the ranking sorts the utilities; score = round(5.5 + 3 * scale * u + offset), clipped to 1..10
    ranking, scores = label_both_ways(rec, lab, {0: (0.0, 1.0)}, random.Random(0))
    assert ranking == [1, 3, 0, 2] and scores == [6, 8, 1, 7]         # 5.8, 8.5 (to even), -0.5 -> 1, 7.0
    _, shifted = label_both_ways(rec, lab, {0: (2.0, 0.5)}, random.Random(0))   # another labeler's scale
    assert shifted == [8, 9, 4, 8]                                    # 7.65, 9.0, 4.5 (to even), 8.25
    # with noise, the ranking is still the order of the scores' noisy utilities: never against them
    lab.temperature = 0.3
    for seed in range(20):
        ranking, scores = label_both_ways(rec, lab, {0: (0.0, 1.0)}, random.Random(seed))
        assert all(scores[ranking[i]] >= scores[ranking[i + 1]] for i in range(3))


@pytest.mark.exercise("3.4")
def test_score_ranking_orders_by_score_and_ties_equal_scores():
    from nanorm.experiments.scores_vs_rankings import score_ranking
    ranking, targets = score_ranking([3, 7, 3, 5])
    assert ranking == [1, 3, 0, 2]                  # pairs (1,3) (1,0) (1,2) (3,0) (3,2) (0,2): only 0-2 is a tie
    assert targets == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5]


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3")
def test_scores_vs_rankings_smoke(tmp_path, tiny_rm):
    from nanorm.experiments.scores_vs_rankings import WAYS, main
    res = main([f"--comparisons={tiny_rm.dir}/comparisons.jsonl", f"--eval_comparisons={tiny_rm.dir}/eval_comparisons.jsonl",
                f"--sft_ckpt={tiny_rm.flags['sft_ckpt']}", f"--out_dir={tmp_path}", "--n_prompts=4", "--threads=1"])
    assert [run["way"] for run in res["runs"]] == list(WAYS) and res["n_prompts"] == 4
    assert all(run["steps"] == 2 and 0 <= run["accuracy"] <= 1 for run in res["runs"])
    agree = {run["inter_labeler_agreement"] for run in res["runs"]}
    assert len(agree) == 1                                  # one set of held-out pairs judges every RM
    loaded = load_comparisons(f"{tiny_rm.dir}/comparisons.jsonl")[0][:4]     # as the experiment loads them
    assert sum(res["score_histogram"].values()) == sum(len(r.responses) for r in loaded)
    assert json.load(open(tmp_path / "scores_vs_rankings.json"))["n_pairs"] == res["n_pairs"]
    assert (tmp_path / "scores_vs_rankings.png").stat().st_size > 1000


def test_spearman_ranks_with_ties_by_hand():
    from nanorm.experiments.common import spearman
    from nanorm.experiments.rm_size import tag
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert spearman([3, 1, 2], [0.1, 0.9, 0.5]) == pytest.approx(-1.0)
    # ties share their mean rank: x ranks 0, 1.5, 1.5, 3 against 0, 1, 2, 3; r = 4.5 / sqrt(4.5 * 5) = 0.9487
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / (4.5 * 5) ** 0.5)
    # y ranks 1, 0, 3, 2 against 0, 1, 2, 3: d = 1, 1, 1, 1, rho = 1 - 6 * 4 / (4 * 15) = 0.6
    assert spearman([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)
    assert tag("--n_prompts=342 --init=random") == "n_prompts342_initrandom"


def forbid_new_stages(monkeypatch):
    """From here on, running a stage fails the test: an experiment called again must read every stage back."""
    from nanorm import stages
    def no_new_runs(*args, **kwargs):
        raise AssertionError("a finished stage was run again")
    monkeypatch.setattr(stages, "run_in_child", no_new_runs)


def test_permutation_p_by_hand():
    # 4 points: of the 24 orderings, |rho| = 1 for 2; |rho| >= 0.6 (sum of squared rank gaps <= 4 or >= 16)
    # for 1 + 3 + 1 and 1 + 3 + 1 of them
    from nanorm.experiments.common import permutation_p
    assert permutation_p([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(2 / 24)
    assert permutation_p([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(10 / 24)
    assert permutation_p(range(12), range(12), n_random=2000) < 0.002    # random orderings past 8 points


def test_predicts_ppo_pools_every_experiments_rms(tmp_path, capsys):
    from nanorm.experiments import predicts_ppo
    row = lambda acc, gold, ece, win: {"accuracy": acc, "gold_accuracy": gold, "ece": ece, "ppo_win_rate": win}
    (tmp_path / "rm_size.json").write_text(json.dumps({"rows": [
        {"width": 64, "variant": "", **row(0.60, 0.70, 0.07, 0.60)},
        {"width": 128, "variant": "--init=random", **row(0.62, 0.69, None, 0.62)},
        {"width": 256, "variant": "", "accuracy": 0.9}]}))                  # no PPO run: left out
    (tmp_path / "labeler_votes.json").write_text(json.dumps({"runs": [
        {"way": "one_labeler", **row(0.57, 0.71, 0.05, 0.58)}, {"way": "soft_vote", **row(0.65, 0.68, 0.09, 0.64)}]}))
    sources = f"--sources={tmp_path}/rm_size.json,{tmp_path}/missing.json,{tmp_path}/labeler_votes.json"
    res = predicts_ppo.main([sources, f"--out_dir={tmp_path}/out"])
    assert "missing.json: not found" in capsys.readouterr().out
    assert [(r["experiment"], r["rm"]) for r in res["rows"]] == [
        ("rm_size", "d_model 64"), ("rm_size", "init=random"), ("labeler_votes", "one_labeler"),
        ("labeler_votes", "soft_vote")]
    got = res["predicts_ppo"]
    assert got["accuracy"] == pytest.approx({"n": 4, "spearman": 1.0, "p": 2 / 24})
    assert got["gold_accuracy"] == pytest.approx({"n": 4, "spearman": -1.0, "p": 2 / 24})
    assert got["ece"]["n"] == 3 and got["minimal_pairs_mean"] == {"n": 0, "spearman": None, "p": None}
    assert json.load(open(tmp_path / "out" / "predicts_ppo.json"))["predicts_ppo"]["accuracy"]["n"] == 4
    assert (tmp_path / "out" / "predicts_ppo.png").stat().st_size > 1000
    with pytest.raises(SystemExit, match="2 RMs with a PPO run; at least 3"):
        predicts_ppo.main([f"--sources={tmp_path}/rm_size.json", f"--out_dir={tmp_path}/out2"])


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3",
                      "5.1", "5.2", "5.3", "5.4", "5.5", "5.7")
def test_rm_size_smoke(tmp_path, tiny_sft, monkeypatch):
    # the tiny policy has d_model 32; a width-16 RM gets its own SFT trunk. --lr=0: each RM's trunk is
    # still exactly the SFT trunk it was initialised from, so the plumbing of --init_ckpt shows.
    from nanorm.experiments import rm_size
    argv = [f"--sft_ckpt={tiny_sft.dir}/ckpt.pt", f"--out_dir={tmp_path}", "--widths=32,16", "--threads=1",
            "--variants=--n_prompts=3",
            "--sft_flags=--max_iters=3 --warmup_iters=1 --batch_size=8 --n_train_prompts=40 --n_eval_prompts=4 "
            "--device=cpu",
            "--rm_flags=--n_prompts=6 --n_eval_prompts=6 --k_max=5 --prompts_per_batch=3 --lr=0 --device=cpu",
            "--see_flags=--n_prompts=4 --k=3 --n_accuracy_prompts=30",
            "--ppo_flags=--n_iters=1 --batch_size=8 --minibatch_size=4 --ppo_epochs=1 --n_eval_prompts=4 "
            "--n_test_prompts=6 --best_of=2 --device=cpu"]
    res = rm_size.main(argv)
    assert [(r["width"], r["variant"]) for r in res["rows"]] == [(16, ""), (32, ""), (32, "--n_prompts=3")]
    assert res["policy_width"] == 32
    assert [r["n_train_prompts"] for r in res["rows"]] == [6, 6, 3]          # the variant's flag reached train_rm.py
    assert (tmp_path / "rm_32_n_prompts3" / "ckpt.pt").exists()
    assert res["predicts_ppo"]["accuracy"]["n"] == 3
    load = lambda path: torch.load(path, map_location="cpu", weights_only=True)
    for width, init in ((16, tmp_path / "sft_16" / "ckpt.pt"), (32, tiny_sft.dir / "ckpt.pt")):
        rm, trunk = load(tmp_path / f"rm_{width}" / "ckpt.pt"), load(init)
        assert rm["model_config"]["n_embd"] == width == trunk["model_config"]["n_embd"]
        for name, value in trunk["state_dict"].items():
            if name.startswith("trunk."):
                assert torch.equal(rm["state_dict"][name], value), name
    assert not (tmp_path / "sft_32").exists()                          # the policy's width: the policy's trunk
    same = [(tmp_path / f"rm_{w}" / "comparisons.jsonl").read_bytes() for w in (16, 32)]
    assert same[0] == same[1] and same[0]                               # the same rankings for every RM
    small, large, _ = res["rows"]
    assert small["rm_params"] < large["rm_params"]
    assert all(0 <= r[k] <= 1 for r in res["rows"] for k in ("accuracy", "ppo_win_rate", "best_of_n_win_rate"))
    assert json.load(open(tmp_path / "rm_size.json"))["rows"] == json.loads(json.dumps(res["rows"]))
    assert (tmp_path / "rm_size.png").stat().st_size > 1000
    forbid_new_stages(monkeypatch)                                  # a second call reads every stage back
    assert rm_size.main(argv)["rows"] == res["rows"]


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3")
def test_rm_data_curve_smoke(tmp_path, tiny_rm):
    # each size trains on the first N prompts of the same file: more prompts, more pairs; both inits run
    from nanorm.experiments import rm_data_curve
    res = rm_data_curve.main([f"--comparisons={tiny_rm.dir}/comparisons.jsonl", f"--sft_ckpt={tiny_rm.flags['sft_ckpt']}",
                              f"--out_dir={tmp_path}", "--sizes=4,8", "--threads=1",
                              "--extra=--n_eval_prompts=4 --prompts_per_batch=4 --device=cpu"])
    rows = res["rows"]
    assert [(r["init"], r["n_prompts"]) for r in rows] == [("sft", 4), ("sft", 8), ("random", 4), ("random", 8)]
    assert rows[0]["n_pairs"] < rows[1]["n_pairs"] and rows[0]["n_pairs"] == rows[2]["n_pairs"]
    sft_trunk = torch.load(tiny_rm.flags["sft_ckpt"], map_location="cpu", weights_only=True)["state_dict"]
    random_rm = torch.load(tmp_path / "random_4" / "ckpt.pt", map_location="cpu", weights_only=True)
    assert random_rm["config"]["init"] == "random" and not torch.equal(
        random_rm["state_dict"]["trunk.wte.weight"], sft_trunk["trunk.wte.weight"])
    assert json.load(open(tmp_path / "rm_data_curve.json"))["rows"] == json.loads(json.dumps(rows))
    assert (tmp_path / "rm_data_curve.png").stat().st_size > 1000


@pytest.mark.exercise("3.4")
def test_vote_targets_are_the_share_of_rankings_that_put_i_above_j():
    from nanorm.experiments.labeler_votes import vote_targets
    # pairs in order (0,1) (0,2) (1,2); one ranking gives 1 or 0 per pair
    assert vote_targets([[2, 0, 1]], 3) == [1.0, 0.0, 0.0]
    # three labelers: 0>1>2, 1>0>2, 2>0>1 -> 0 above 1 in two of three, 0 above 2 in two, 1 above 2 in two
    assert vote_targets([[0, 1, 2], [1, 0, 2], [2, 0, 1]], 3) == pytest.approx([2 / 3, 2 / 3, 2 / 3])
    assert vote_targets([[0, 1], [0, 1], [1, 0]], 2) == pytest.approx([2 / 3])


@pytest.mark.exercise("3.3", "3.4", "3.5")
def test_majority_and_soft_vote_losses_by_hand(monkeypatch):
    """loss_of on one prompt of K = 2 whose RM rewards are fixed: soft p = 2/3 against the majority's 1."""
    from nanorm.experiments import labeler_votes
    rec = Comparison("x", ["a", "b"], [0, 1], 0, {"votes": [[0, 1], [0, 1], [1, 0]]})
    r = torch.tensor([0.7, -0.3])                                # margin 1.0
    monkeypatch.setattr(labeler_votes.train_rm, "forward_rewards", lambda rm, batch, *args: (r, None, None, None))
    soft = labeler_votes.loss_of("soft_vote", None, [rec], ())
    major = labeler_votes.loss_of("majority_of_3", None, [rec], ())
    one = labeler_votes.loss_of("one_labeler", None, [rec], ())
    log_sig = lambda x: -math.log1p(math.exp(-x))
    assert soft.item() == pytest.approx(-(2 / 3 * log_sig(1.0) + 1 / 3 * log_sig(-1.0)), abs=1e-6)   # 0.6466
    assert major.item() == pytest.approx(-log_sig(1.0), abs=1e-6) == one.item()                   # 0.3133


@pytest.mark.exercise("3.3", "3.4", "3.5")
def test_per_labeler_loss_by_hand(monkeypatch):
    """Each vote is read on its voter's reward r + o_l; with every labeler's reward the same it is the soft vote."""
    from nanorm.experiments import labeler_votes
    rec = Comparison("x", ["a", "b"], [0, 1], 0, {"votes": [[0, 1], [0, 1], [1, 0]], "voters": [0, 3, 5]})

    def fake_forward(rm, records, *args):   # response j of each record, on the reward column its row is given
        cols = rm.column.tolist() if rm.column is not None else [None] * (2 * len(records))
        r = torch.tensor([table[j % 2][c] if c is not None else soft_r[j % 2] for j, c in enumerate(cols)])
        return (r, *kwise_pairs([x.ranking for x in records]))

    monkeypatch.setattr(labeler_votes.train_rm, "forward_rewards", fake_forward)
    rm = type("FakeRM", (), {"columns": {0: 0, 3: 1, 5: 2}, "column": None})()
    log_sig = lambda x: -math.log1p(math.exp(-x))
    table = [[0.7, 0.2, 0.0], [-0.3, 0.4, 1.0]]               # response a, b on labelers 0, 3, 5's rewards
    # labeler 0 says a > b on margin 1.0; labeler 3 says a > b on margin -0.2; labeler 5 says b > a on margin 1.0
    want = -(log_sig(1.0) + log_sig(-0.2) + log_sig(1.0)) / 3
    assert labeler_votes.loss_of("per_labeler", rm, [rec], ()).item() == pytest.approx(want, abs=1e-6)
    assert rm.column is None                                   # labeler_rewards puts the column back
    table, soft_r = [[0.7] * 3, [-0.3] * 3], [0.7, -0.3]      # every labeler's reward the same: the soft vote
    soft = labeler_votes.loss_of("soft_vote", rm, [rec], ())
    assert labeler_votes.loss_of("per_labeler", rm, [rec], ()).item() == pytest.approx(soft.item(), abs=1e-6)


@pytest.mark.exercise("1.1", "3.1", "3.2")
def test_per_labeler_rm_reads_each_labelers_reward_at_the_last_token():
    from nanorm.experiments.labeler_votes import PerLabelerRM
    from nanorm.model import GPTConfig, ScalarHeadModel
    torch.manual_seed(0)
    base = ScalarHeadModel(GPTConfig(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=8))
    rm = PerLabelerRM.around(base, [4, 9])
    idx = torch.randint(0, 16, (2, 6))
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    assert torch.allclose(rm.score(idx, mask), base.score(idx, mask), atol=1e-6)   # offsets start at zero
    torch.nn.init.normal_(rm.offsets.weight)
    with torch.no_grad():
        h = rm.trunk(idx, mask)
        last = [max(t for t in range(6) if mask[b, t]) for b in range(2)]           # a loop: each row's final token
        each = torch.stack([rm.head(h[b, last[b]]) + rm.offsets(h[b, last[b]]) for b in range(2)])   # (2, L)
    assert torch.allclose(rm.score(idx, mask), each.mean(-1), atol=1e-5)            # the population's
    torch.nn.init.normal_(rm.offsets.bias)
    with torch.no_grad():
        each = each + rm.offsets.bias
        assert torch.allclose(rm.population().score(idx, mask), each.mean(-1), atol=1e-5)   # one head: what PPO reads
    rm.column = torch.tensor([1, 0])                                                 # row 0: labeler 9, row 1: 4
    assert torch.allclose(rm.score(idx, mask), torch.stack([each[0, 1], each[1, 0]]), atol=1e-5)
    assert not torch.allclose(each[:, 0], each[:, 1])


@pytest.mark.exercise("3.4", "3.5", "4.1")
def test_taste_ceiling_by_hand():
    """Two people who rank a, b, c in opposite orders: each one's own utility explains all their pairs; the
    mean utility (a 2, b 2, c 3.5) ties a with b (half) and gets 0 or 2 of the other two right."""
    from nanorm.experiments.labeler_votes import taste_ceiling
    taste = {0: {"a": 3, "b": 2, "c": 1}, 1: {"a": 1, "b": 2, "c": 6}}
    people = [type("Person", (), {"id": i, "utility": lambda self, p, t, f, i=i: taste[i][t]})() for i in (0, 1)]
    meta = {"world_prompt": world.make_split("test", 1)[0].to_dict(), "finished": [True] * 3}
    rec = lambda ranking, who: Comparison("x", ["a", "b", "c"], ranking, who, meta)
    ceiling = taste_ceiling([rec([0, 1, 2], 0)], people, {0: [rec([0, 1, 2], 0)], 1: [rec([2, 1, 0], 1)]})
    assert ceiling["0"] == pytest.approx({"own": 1.0, "population": 0.5 / 3})
    assert ceiling["1"] == pytest.approx({"own": 1.0, "population": 2.5 / 3})


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3",
                      "5.1", "5.2", "5.3", "5.4", "5.5", "5.7")
def test_labeler_votes_smoke(tmp_path, tiny_rm):
    import train_rm
    from nanorm.evaluate import load_reward_model
    from nanorm.experiments.labeler_votes import WAYS, main
    from nanorm.prefdata import load_comparisons
    from nanorm.tokenizer import DEFAULT_RANKS, load_tokenizer
    res = main([f"--comparisons={tiny_rm.dir}/comparisons.jsonl", f"--eval_comparisons={tiny_rm.dir}/eval_comparisons.jsonl",
                f"--sft_ckpt={tiny_rm.flags['sft_ckpt']}", f"--out_dir={tmp_path}", "--n_prompts=4", "--threads=1",
                "--best_of=2", "--n_test_prompts=6", "--ppo=one_labeler,per_labeler", "--see_flags=--n_prompts=4 --k=3 --n_accuracy_prompts=30",
                "--ppo_flags=--n_iters=1 --batch_size=8 --minibatch_size=4 --ppo_epochs=1 --n_eval_prompts=4 "
                "--n_test_prompts=6 --best_of=2 --device=cpu"])
    # --ppo: those RMs saved as train_ppo.py reads one, their rewards of the first 4 prompts' SFT samples
    # normalised to mean 0 and std 1 (per_labeler's population reward among them), and optimised
    tok, records = load_tokenizer(DEFAULT_RANKS), load_comparisons(str(tiny_rm.dir / "comparisons.jsonl"))[0][:4]
    max_new = torch.load(tiny_rm.flags["sft_ckpt"], weights_only=True)["config"]["max_response_tokens"]
    assert not (tmp_path / "rm_soft_vote").exists() and "ppo_win_rate" not in res["runs"][3]
    for run in (res["runs"][0], res["runs"][4]):
        rm, ckpt = load_reward_model(str(tmp_path / f"rm_{run['way']}" / "ckpt.pt"), tok, torch.device("cpu"))
        r = train_rm.rewards_and_loss(rm, records, tok, max_new, torch.device("cpu"), "float32")[0]
        assert abs(r.mean().item()) < 1e-4 and r.std().item() == pytest.approx(1.0, abs=1e-4), run["way"]
        assert ckpt["step"] == run["steps"]
        assert 0 <= run["ppo_win_rate"] <= 1 and run["ppo_kl"] >= 0 and "minimal_pairs_mean" in run
        assert (tmp_path / f"ppo_{run['way']}" / "eval.json").exists()
    assert [run["way"] for run in res["runs"]] == list(WAYS)
    assert [run["labellings"] for run in res["runs"]] == [4, 12, 12, 12, 12]    # the same budget but the first
    assert [run["steps"] for run in res["runs"]] == [2, 6, 2, 2, 2]
    assert all(set(run["accuracy_per_training_labeler"]) == {str(i) for i in range(6)} for run in res["runs"])
    assert set(res["runs"][4]["own_reward_accuracy"]) == {str(i) for i in range(6)}
    assert "own_reward_accuracy" not in res["runs"][3]
    assert set(res["taste_ceiling"]) == {str(i) for i in range(6)}
    assert len({run["inter_labeler_agreement"] for run in res["runs"]}) == 1    # one set of held-out pairs
    for run in res["runs"]:
        assert 0 <= run["accuracy"] <= 1 and 0 <= run["prob_error"] <= 1 and 0 <= run["best_of_n_win_rate"] <= 1
    assert 0 < res["split_vote_rate"] < 1
    assert json.load(open(tmp_path / "labeler_votes.json"))["runs"][3]["way"] == "soft_vote"
    assert (tmp_path / "labeler_votes.png").stat().st_size > 1000


@pytest.mark.parametrize("module,flag,error", [
    ("headroom", "--n_prompts=5000", "error: --n_prompts=5000: the world's test split has only"),
    ("headroom", "--candidates=dpo", "error: --candidates=dpo: expected sft or demonstrations"),
    ("what_the_rm_sees", "--n_accuracy_prompts=100000", "error: --n_accuracy_prompts=100000: the world's test split"),
    ("what_the_rm_sees", "--k=1", "error: --k=1: must be at least 2"),
    ("labeler_votes", "--ppo=soft", "error: --ppo=soft: expected all or ways among one_labeler,")])
def test_analysis_flags_are_checked_before_anything_loads(module, flag, error):
    """A flag the world cannot serve stops with one line naming it (not a traceback from make_split)."""
    import importlib
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(f"nanorm.experiments.{module}").main([flag, "--sft_ckpt=no/such/ckpt.pt"])
    assert str(stop.value).startswith(error)


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3",
                      "5.1", "5.2", "5.3", "5.4", "5.5", "5.7")
def test_rm_ensemble_smoke(tmp_path, tiny_sft, tiny_rm, monkeypatch):
    from nanorm.experiments import rm_ensemble
    argv = [f"--sft_ckpt={tiny_sft.dir}/ckpt.pt", f"--rm_ckpt={tiny_rm.dir}/ckpt.pt", f"--out_dir={tmp_path}",
            "--members=2", "--n_iters=2", "--eval_interval=1", "--n_eval_prompts=6", "--uwo_lambda=2",
            "--objectives=single,uwo",
            "--rm_flags=--n_prompts=6 --n_eval_prompts=6 --k_max=5 --prompts_per_batch=3 --device=cpu",
            "--ppo_flags=--batch_size=8 --minibatch_size=4 --ppo_epochs=1 --n_test_prompts=6 --device=cpu"]
    res = rm_ensemble.main(argv)
    assert [m["seed"] for m in res["members"]] == [1337, 1338]
    member = tmp_path / "rm_seed1338"
    assert (member / "comparisons.jsonl").read_bytes() != (tiny_rm.dir / "comparisons.jsonl").read_bytes()
    assert list(res["runs"]) == ["single", "uwo"]
    for objective, run in res["runs"].items():
        assert [p["iter"] for p in run["points"]] == [1, 2]
        config = torch.load(tmp_path / f"ppo_{objective}" / "ckpt.pt", weights_only=True)["config"]
        assert config["rm_ckpt"].split(",") == [str(tiny_rm.dir / "ckpt.pt")] + ([str(member / "ckpt.pt")] if
                                                                                 objective == "uwo" else [])
        assert config["rm_objective"] == ("mean" if objective == "single" else objective)
        assert config["beta"] == 0.02 and config["uwo_lambda"] == 2.0 and config["n_eval_prompts"] == 6
    assert res["runs"]["single"]["sft_point"]["gold"] == res["runs"]["uwo"]["sft_point"]["gold"]   # the same samples
    assert res["gold_standard_error"] >= 0                                   # (tiny samples: all gold -1)
    assert json.load(open(tmp_path / "rm_ensemble.json"))["runs"] == json.loads(json.dumps(res["runs"]))
    assert (tmp_path / "rm_ensemble.png").stat().st_size > 1000
    forbid_new_stages(monkeypatch)                                  # a second call reads every stage back
    assert rm_ensemble.main(argv)["runs"] == res["runs"]


def test_rm_ensemble_flags_are_checked_before_anything_runs(tmp_path):
    from nanorm.experiments import rm_ensemble
    for name in ("sft.pt", "rm.pt", "eval.json"):                         # the checks look for the files only
        (tmp_path / name).write_text("")
    base = [f"--sft_ckpt={tmp_path}/sft.pt", f"--rm_ckpt={tmp_path}/rm.pt", f"--out_dir={tmp_path}/e"]
    for flag, message in (("--members=1", "error: --members=1: "),
                          ("--objectives=single,best", "error: --objectives=single,best: expected some of "),
                          ("--objectives=uwo,uwo", "error: --objectives=uwo,uwo: expected some of "),
                          (f"--rm_ckpt={tmp_path}/none.pt", f"error: --rm_ckpt={tmp_path}/none.pt: not found")):
        with pytest.raises(SystemExit, match="^" + re.escape(message)):
            rm_ensemble.main(base + [flag])
    assert not (tmp_path / "e").exists()                                  # nothing written


# --- process against outcome reward models (nanorm/experiments/process_rewards.py) ---

def _chain(expr):
    from nanorm.experiments.process_rewards import chain_prompts
    return next(p for p in chain_prompts() if p.id == f"chain-{expr}")


def test_chain_prompts_count_by_hand():
    """30 one-operation sums stay in 0..4 (15 plus, 15 minus), and from any value v in 0..4 exactly six
    next steps do (plus 0..4-v, minus 0..v): 30 * 6 two-step chains, 30 * 36 three-step ones."""
    from nanorm.experiments.process_rewards import chain_prompts
    prompts = chain_prompts()
    assert Counter(len(p.info["ops"]) for p in prompts) == {2: 180, 3: 1080}
    assert len({p.id for p in prompts}) == len(prompts)
    p = _chain("3plus1minus2")
    assert p.text == "What is 3 plus 1 minus 2?" and p.info["answer"] == 2


def test_chain_steps_are_judged_in_order_by_hand():
    from nanorm.experiments.process_rewards import answer_correct, check_steps
    p = _chain("3plus1minus2")
    cases = [([(3, "plus", 1, 4), (4, "minus", 2, 2)], [True, True], True),
             ([(3, "plus", 1, 5), (4, "minus", 2, 2)], [False, False], True),   # right for a wrong reason
             ([(3, "plus", 1, 5), (5, "minus", 2, 3)], [False, True], False),   # a slip carried forward
             ([(3, "plus", 1, 4), (3, "minus", 2, 1)], [True, False], False)]   # a copying slip
    for steps, verdicts, right in cases:
        assert check_steps(p, steps) == verdicts and answer_correct(p, steps) == right


def test_labels_stop_at_the_first_wrong_step_and_ends_mark_full_stops():
    from nanorm.experiments.process_rewards import ProcessConfig, chain_prompts, make_items
    from nanorm.tokenizer import load_tokenizer
    tok = load_tokenizer()
    items = make_items(tok, chain_prompts()[::50], 8, random.Random(0), ProcessConfig(slip=0.3, copy_slip=0.3), 0.0)
    assert {it["valid"] for it in items} == {True, False}
    for it in items:
        first_wrong = it["steps"].index(False) if False in it["steps"] else len(it["steps"]) - 1
        assert it["label_steps"] == it["steps"][:first_wrong + 1]
        assert it["label_answer"] == it["answer"] and it["label_valid"] == it["valid"]
        assert [tok.decode([it["ids"][e]]) for e in it["ends"]] == ["."] * len(it["steps"])
        assert it["ids"][-1] == tok.eos_id and it["ends"][-1] == len(it["ids"]) - 2


@pytest.mark.exercise("3.2")
def test_process_and_outcome_losses_against_a_loop():
    """loss_of reads the PRM at each labelled step's full stop and the outcome RMs at the last token."""
    from nanorm.experiments.process_rewards import loss_of, solution_scores
    from nanorm.model import ScalarHeadModel
    from nanorm.tokenizer import load_tokenizer
    tok = load_tokenizer()
    items = [{"ids": [5] * 9, "ends": [2, 5, 7], "label_steps": [True, False], "label_answer": True, "label_valid": False},
             {"ids": [5] * 6, "ends": [1, 4], "label_steps": [True, True], "label_answer": False, "label_valid": True}]
    values = torch.linspace(-2, 2, 18).reshape(2, 9)
    FakeRM = type("FakeRM", (), {"__call__": lambda self, idx, mask, response_mask=None: values,
                                 "score": ScalarHeadModel.score, "eval": lambda self: None})
    rm = FakeRM()
    bce = lambda x, y: -math.log(torch.sigmoid(torch.tensor(x if y else -x)).item())
    prm = [bce(values[i, it["ends"][k]].item(), y) for i, it in enumerate(items) for k, y in enumerate(it["label_steps"])]
    assert loss_of("prm", rm, tok, items).item() == pytest.approx(sum(prm) / 4, rel=1e-5)
    last = [values[0, 8].item(), values[1, 5].item()]
    assert loss_of("orm", rm, tok, items).item() == pytest.approx((bce(last[0], 1) + bce(last[1], 0)) / 2, rel=1e-5)
    assert loss_of("orm_valid", rm, tok, items).item() == pytest.approx((bce(last[0], 0) + bce(last[1], 1)) / 2, rel=1e-5)
    logsig = lambda x: math.log(torch.sigmoid(torch.tensor(x)).item())
    prm_scores = solution_scores("prm", rm, tok, items)
    assert prm_scores[0] == pytest.approx(sum(logsig(values[0, e].item()) for e in (2, 5, 7)), rel=1e-5)
    assert solution_scores("orm", rm, tok, items).tolist() == pytest.approx(last)


def test_best_of_n_by_hand():
    from nanorm.experiments.process_rewards import best_of_n
    scores = np.array([[0.1, 0.9, 0.5, 0.2]])
    answer, valid = np.array([[True, False, True, True]]), np.array([[True, False, False, True]])
    assert best_of_n(scores, answer, valid, 1) == {"answer": 0.75, "valid": 0.5, "right_wrong_reason": 0.25}
    assert best_of_n(scores, answer, valid, 2) == {"answer": 0.5, "valid": 0.0, "right_wrong_reason": 0.5}
    assert best_of_n(scores, answer, valid, 4) == {"answer": 0.0, "valid": 0.0, "right_wrong_reason": 0.0}


def test_process_rewards_flags_are_checked():
    from nanorm.experiments.process_rewards import main
    for flag, error in (("--budgets=10,x", "error: --budgets=10,x: expected whole numbers"),
                        ("--budgets=0", "error: --budgets=0: each budget must be at least 1"),
                        ("--label_noise=0.7", "error: --label_noise=0.7: must be in [0, 0.5]"),
                        ("--n_test_prompts=294", "error: --n_test_prompts=294: the chain family has 293 test prompts")):
        with pytest.raises(SystemExit) as stop:
            main([flag, "--sft_ckpt=no/such/ckpt.pt"])
        assert str(stop.value).startswith(error)


@pytest.mark.exercise("1.1", "2.1", "3.1", "3.2")
def test_process_rewards_smoke(tmp_path, tiny_sft):
    from nanorm.experiments.process_rewards import KINDS, main
    res = main([f"--sft_ckpt={tiny_sft.dir}/ckpt.pt", f"--out_dir={tmp_path}", "--budgets=6,12", "--seeds=2",
                "--steps=2", "--batch_size=4", "--n_test_prompts=6", "--n_candidates=4", "--threads=1"])
    assert res["ns"] == [1, 2, 4] and set(res["runs"]) == {"6", "12"}
    assert all(len(res["runs"][b][k]) == 2 for b in res["runs"] for k in KINDS)
    pass_at = [res["oracle"][str(n)] for n in res["ns"]]
    assert pass_at == sorted(pass_at) and pass_at[0] == pytest.approx(res["generator"]["answer"])
    for rows in res["runs"]["12"].values():
        for row in rows:   # one of n candidates: the pick's answer is right at most as often as pass@n
            assert all(row["best_of"][str(n)]["answer"] <= res["oracle"][str(n)] + 1e-9 for n in res["ns"])
            assert row["best_of"]["1"] == res["runs"]["6"]["orm"][0]["best_of"]["1"]   # n = 1: no choice
    assert json.load(open(tmp_path / "process_rewards.json"))["n_test_prompts"] == 6
    assert (tmp_path / "process_rewards.png").stat().st_size > 1000
