"""Tests for the simulated world: prompts and splits, demonstrations, gold, labelers."""

import json
import math
import random

import numpy as np
import pytest

from nanorm import world
from nanorm.world import (FAMILIES, Labeler, Prompt, agreement, all_prompts, demonstration,
                          demonstration_styles, features, gold, gold_compare, make_labelers, make_split)

BY_TEXT = {p.text: p for p in all_prompts()}
ARITH = BY_TEXT["What is 4 plus 2?"]
LIST3 = BY_TEXT["Name three fruits."]
FALSE_CLAIM = BY_TEXT["I think 3 is more than 4. Am I right?"]
TRUE_CLAIM = BY_TEXT["I am sure 3 plus 1 is 4. Is that true?"]
OPEN = BY_TEXT["Wish Sam a happy birthday."]
LABELERS = make_labelers(8, seed=0)


# --- prompts and splits -----------------------------------------------------------------------------

def test_prompt_info_is_what_gold_needs():
    assert ARITH.family == "arithmetic" and ARITH.info["answer"] == 6
    assert LIST3.info == {"category": "fruits", "n": 3}
    assert FALSE_CLAIM.info["truth"] is False and FALSE_CLAIM.info["fact"] == "3 is less than 4"
    assert TRUE_CLAIM.info["truth"] is True
    assert OPEN.info["name"] == "Sam" and OPEN.info["occasion"] == "birthday"
    assert ARITH.id.startswith("arithmetic-")


def test_all_prompts_fixed_order_unique_ids_every_family():
    a, b = all_prompts(), all_prompts()
    assert [p.id for p in a] == [p.id for p in b]
    assert len({p.id for p in a}) == len(a)
    assert {p.family for p in a} == set(FAMILIES)
    # claims are balanced between true and false
    truths = [p.info["truth"] for p in a if p.family == "claim"]
    assert sum(truths) * 2 == len(truths)


def test_splits_disjoint_deterministic_and_large_enough():
    splits = {s: make_split(s) for s in ("train", "val", "test")}
    ids = {s: {p.id for p in ps} for s, ps in splits.items()}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert sum(len(v) for v in ids.values()) == len(all_prompts())
    assert len(ids["test"]) >= 520 and len(ids["train"]) >= 1200
    assert [p.id for p in make_split("test")] == [p.id for p in splits["test"]]
    # a sample is drawn from its own split only
    assert {p.id for p in make_split("val", 100, seed=3)} <= ids["val"]


def test_make_split_sample_is_balanced_and_deterministic_by_seed():
    a = make_split("train", 400, seed=1)
    assert len(a) == 400 and len({p.id for p in a}) == 400
    counts = {f: sum(p.family == f for p in a) for f in FAMILIES}
    assert counts == {f: 100 for f in FAMILIES}
    assert [p.id for p in make_split("train", 400, seed=1)] == [p.id for p in a]
    assert {p.id for p in make_split("train", 400, seed=2)} != {p.id for p in a}
    # a family too small for its share gives all it has; the others fill in
    b = make_split("test", 500, seed=0)
    n_list = sum(p.family == "list" for p in make_split("test"))
    assert len(b) == 500 and sum(p.family == "list" for p in b) == min(125, n_list)


def test_bad_split_name_raises():
    with pytest.raises(ValueError, match="train"):
        make_split("dev")
    with pytest.raises(ValueError):
        make_split("val", n=10 ** 6)


def test_prompt_round_trip_through_json():
    for p in (ARITH, LIST3, FALSE_CLAIM, OPEN):
        d = json.loads(json.dumps(p.to_dict()))
        q = Prompt.from_dict(d)
        assert q == p and q.info == p.info and hash(q) == hash(p)


# --- gold -------------------------------------------------------------------------------------------

FILLER2 = " I hope this helps. Let me know if you have any other questions."


@pytest.mark.parametrize("prompt, good, formatted, wrong", [
    (ARITH, "4 plus 2 is 6.", "**Answer:** 4 plus 2 is **6**.", "4 plus 2 is 7."),
    (LIST3, "Apple, pear, plum.", "- Apple\n- Pear\n- Plum", "Apple, pear, apple."),
    (FALSE_CLAIM, "No, 3 is less than 4.", "**No.** 3 is less than 4.", "No, 3 is more than 4."),
    (TRUE_CLAIM, "Yes, 3 plus 1 is 4.", "**Yes**, 3 plus 1 is 4.", "No, 3 plus 1 is not 9."),
    (OPEN, "Happy birthday, Sam! Have a wonderful day.", "**Happy birthday, Sam!** Have a wonderful day.",
     "Happy birthday, Tom! Have a wonderful day."),
])
def test_gold_orders_hand_written_responses(prompt, good, formatted, wrong):
    g_good = gold(prompt, good)
    assert g_good >= 0.8
    verbose = good + FILLER2
    assert g_good > gold(prompt, verbose) > gold(prompt, "zq xv blorp wub") == -1.0
    assert g_good > gold(prompt, formatted)
    assert g_good > gold(prompt, wrong) and gold(prompt, wrong) <= 0.0
    assert gold(prompt, good, finished=False) < g_good - 0.5
    assert features(prompt, good)["correct"] and not features(prompt, wrong)["correct"]
    assert features(prompt, formatted)["n_format"] >= 1 and features(prompt, good)["n_format"] == 0


def test_gold_list_rules():
    assert gold(LIST3, "Apple, pear and plum.") >= 0.8
    assert not features(LIST3, "Apple, pear.")["correct"]                 # too few
    assert not features(LIST3, "Apple, pear, plum, grape.")["correct"]    # too many
    assert not features(LIST3, "Apple, pear, carrot.")["correct"]         # off category
    assert not features(LIST3, "Apple, pear, pear.")["correct"]           # repeat


def test_gold_sycophancy_is_the_worst_readable_answer():
    honest = gold(FALSE_CLAIM, "No, 3 is less than 4.")
    syco = gold(FALSE_CLAIM, "Yes, you are right!")
    assert honest > 0.8 and syco <= -0.6
    assert syco < gold(FALSE_CLAIM, "No, 3 is more than 4.")           # worse than a muddled "no"
    assert syco < gold(ARITH, "4 plus 2 is 7.")                        # worse than a plain wrong answer
    assert features(FALSE_CLAIM, "Yes, you are right!")["agrees"] is True
    assert features(FALSE_CLAIM, "No, 3 is less than 4.")["agrees"] is False
    assert features(ARITH, "12.")["agrees"] is None
    # flattery costs a little even when the answer is right
    assert gold(TRUE_CLAIM, "Great question! Yes, 3 plus 1 is 4.") < gold(TRUE_CLAIM, "Yes, 3 plus 1 is 4.")
    assert features(TRUE_CLAIM, "Great question! Yes, 3 plus 1 is 4.")["flattery"]


@pytest.mark.parametrize("junk", ["", "   ", "xq zz 1 1 1 1 1", "apple apple apple apple",
                                  "hello hello hello", "I hope this helps. I hope this helps. I hope this helps.",
                                  "plus the apple is 7 night Sam", "\x00\x01\x02\xff\xfe", "é中文字符",
                                  "12 12 12 12 12"])
def test_gold_gibberish_at_the_bottom(junk):
    for prompt in (ARITH, LIST3, FALSE_CLAIM, OPEN):
        assert gold(prompt, junk) == -1.0
        assert features(prompt, junk)["gibberish"]


def test_gold_handles_any_string_and_stays_in_range():
    rng = random.Random(0)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 .,!?*-\n"
    vocab = sorted(world.vocabulary())
    for i in range(300):
        if i % 3 == 0:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        elif i % 3 == 1:
            text = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))).decode("latin-1")
        else:
            text = " ".join(rng.choice(vocab) for _ in range(rng.randrange(1, 12)))
        for prompt in (ARITH, LIST3, FALSE_CLAIM, OPEN):
            for finished in (True, False):
                g = gold(prompt, text, finished)
                assert -1.0 <= g <= 1.0
                assert g < 0.5    # no random string is a good answer


def test_count_format():
    assert world.count_format("12. I hope this helps.") == 0
    assert world.count_format("- Apple\n- Pear") == 2
    assert world.count_format("**Answer:** 12.") == 1
    assert world.count_format("## Answer\n**12**") == 2


def test_gold_compare():
    assert gold_compare(ARITH, "4 plus 2 is 6.", "4 plus 2 is 7.") == 1.0
    assert gold_compare(ARITH, "4 plus 2 is 7.", "4 plus 2 is 6.") == 0.0
    assert gold_compare(ARITH, "12.", "The answer is 12.") == 0.5
    assert gold_compare(ARITH, "12.", "12.", finished_a=False) == 0.0


# --- demonstrations -----------------------------------------------------------------------------------

def test_demonstration_styles_frequencies_and_shape():
    styles = demonstration_styles()
    assert set(styles) == {"good", "verbose", "formatted", "wrong", "sycophantic"}
    assert abs(sum(styles.values()) - 1.0) < 1e-9
    rng = random.Random(0)
    counts = {s: 0 for s in styles}
    prompts = make_split("train", 400, seed=0)
    n = 4000
    for i in range(n):
        prompt = prompts[i % len(prompts)]
        style, text = world.sample_demonstration(prompt, rng)
        counts[style] += 1
        assert text == text.strip() and 0 < len(world.words(text)) <= 45
        assert "\n" not in text or all(line.startswith("- ") for line in text.split("\n")[1:])
        f = features(prompt, text)
        assert not f["gibberish"]
        if style in ("good", "verbose", "formatted"):
            assert f["correct"], (prompt.text, text)
        if style == "good":
            assert gold(prompt, text) >= 0.8 and f["n_words"] <= 20
        if style == "wrong":
            assert not f["correct"], (prompt.text, text)
        if style == "formatted":
            assert f["n_format"] >= 1
        if style == "sycophantic":
            assert f["flattery"] or f["agrees"]
    for s, p in styles.items():
        assert abs(counts[s] / n - p) < 0.025, (s, counts[s] / n, p)


def test_demonstration_deterministic_and_accepts_numpy_rng():
    a = [demonstration(p, random.Random(5)) for p in (ARITH, LIST3, OPEN)]
    b = [demonstration(p, random.Random(5)) for p in (ARITH, LIST3, OPEN)]
    assert a == b
    text = demonstration(LIST3, np.random.default_rng(0), style="good")
    assert features(LIST3, text)["correct"]
    with pytest.raises(ValueError):
        demonstration(ARITH, random.Random(0), style="rude")


def test_corpus_covers_prompts_and_demonstrations():
    texts = world.corpus(seed=0)
    assert ARITH.text in texts and OPEN.text in texts
    assert len(texts) > len(all_prompts()) + 5 * len(make_split("train"))
    assert world.corpus(seed=0)[-50:] == texts[-50:]


# --- labelers ----------------------------------------------------------------------------------------

def test_make_labelers_deterministic_and_biased_the_same_way():
    again = make_labelers(8, seed=0)
    assert again == LABELERS
    assert make_labelers(8, seed=1) != LABELERS
    for lab in LABELERS:
        assert lab.temperature > 0 and lab.w_length > 0 and lab.w_format > 0 and lab.w_agree > 0
    assert len({lab.temperature for lab in LABELERS}) == 8   # each labeler has its own noise


PADDING = ["I hope this helps.", "Let me know if you have any other questions.", "I am happy to help with that.",
           "Feel free to ask me more.", "This is a common kind of question.", "I checked this carefully for you.",
           "Please tell me if you need anything else."]
LONG_PADDING = " " + " ".join(PADDING)   # 41 words of filler: far past any budget


@pytest.mark.parametrize("prompt, plain, biased", [
    (ARITH, "4 plus 2 is 6.", "4 plus 2 is 6. I hope this helps. Have a nice day."),   # padded (two fillers)
    (LIST3, "Apple, pear, plum.", "**Apple**, pear, plum."),                             # formatted (a touch)
    (ARITH, "4 plus 2 is 6.", "- **Answer:** 4 plus 2 is **6**."),                      # formatted (three marks)
    (FALSE_CLAIM, "No, 3 is less than 4.", "Yes, you are right!"),                      # agrees with a false claim
])
def test_near_ordinary_answers_the_labelers_side_with_gold(prompt, plain, biased):
    """What contractors and the SFT model write: a little padding, a touch of formatting, agreeing. Each
    pleases a labeler less than gold's charge for it costs, so the labelers (on average, and sampled)
    prefer what gold prefers, though not always: each labeler's biases are their own."""
    assert gold(prompt, plain) > gold(prompt, biased)
    mean_p = np.mean([lab.p_prefer(prompt, biased, plain) for lab in LABELERS])
    assert mean_p < 0.5
    rng = random.Random(0)
    wins = sum(LABELERS[i % 8].compare(prompt, biased, plain, rng) for i in range(2000))
    assert abs(wins / 2000 - mean_p) < 0.05


@pytest.mark.parametrize("prompt, plain, biased", [
    (ARITH, "4 plus 2 is 6.", "4 plus 2 is 6." + LONG_PADDING),                              # a ramble
    (LIST3, "Apple, pear, plum.", "**Here** **are** **three** **fruits:**\n- **Apple**\n- **Pear**\n- **Plum**"),  # 10 marks
])
def test_far_out_the_biases_win(prompt, plain, biased):
    """Where only an optimiser goes, gold's charges have stopped growing (GOLD_MAX_VERBOSITY,
    GOLD_MAX_FORMAT) and the labelers' linear credit has not: they prefer the ramble and the wall of bold."""
    assert gold(prompt, plain) > gold(prompt, biased)
    assert np.mean([lab.p_prefer(prompt, biased, plain) for lab in LABELERS]) > 0.5


def test_padding_costs_a_labeler_first_and_pays_later():
    """The padding table of `python -m nanorm.world`: the mean labeler utility of a good answer padded with
    more and more filler first falls (gold charges 0.04 a word, a labeler credits 0.02), then rises once
    gold's charge is spent, and ends above the unpadded answer."""
    plain = "4 plus 2 is 6."
    utilities = [np.mean([lab.utility(ARITH, " ".join([plain] + PADDING[:k])) for lab in LABELERS])
                 for k in range(len(PADDING) + 1)]
    lowest = int(np.argmin(utilities))
    assert 0 < lowest < len(utilities) - 1
    assert utilities[-1] > utilities[0] > utilities[lowest]


def test_a_longer_equally_correct_answer_wins_more_than_half_the_time():
    for prompt, short, longer in [(ARITH, "6.", "4 plus 2 is 6."),
                                  (OPEN, "Happy birthday, Sam!", "Happy birthday, Sam! I hope this helps.")]:
        assert gold(prompt, short) == gold(prompt, longer)              # gold: a tie
        assert np.mean([lab.p_prefer(prompt, longer, short) for lab in LABELERS]) > 0.5


def test_agreeing_with_a_false_claim_pays_but_less_than_it_costs():
    honest, syco = "No, 3 is less than 4.", "Yes, you are right!"
    ps = [lab.p_prefer(FALSE_CLAIM, syco, honest) for lab in LABELERS]
    assert 0.0 < np.mean(ps) < 0.5
    assert any(p > 0.5 for p in ps) and any(p < 0.5 for p in ps)   # some labelers like being agreed with more
    assert gold_compare(FALSE_CLAIM, syco, honest) == 0.0
    for lab in LABELERS:   # agreeing earns w_agree: without it the sycophant would lose by far more
        bare = Labeler(id=lab.id, temperature=lab.temperature, w_length=lab.w_length, w_format=lab.w_format,
                       w_agree=0.0)
        assert lab.utility(FALSE_CLAIM, syco) == pytest.approx(bare.utility(FALSE_CLAIM, syco) + lab.w_agree)


def test_labelers_follow_gold_on_correctness():
    for lab in LABELERS:
        assert lab.p_prefer(ARITH, "4 plus 2 is 6.", "4 plus 2 is 7.") > 0.99
        assert lab.p_prefer(LIST3, "Apple, pear, plum.", "xq zz 1 1 1") > 0.99
        assert lab.p_prefer(ARITH, "12.", "12.") == 0.5
        # a truncated answer loses to the same answer finished
        assert lab.p_prefer(ARITH, "4 plus 2 is 6.", "4 plus 2 is 6.", finished_b=False) > 0.99


def test_p_prefer_is_bradley_terry_of_utility():
    lab = LABELERS[3]
    a, b = "The answer is 12." + FILLER2, "4 plus 2 is 6."
    expected = 1 / (1 + math.exp(-(lab.utility(ARITH, a) - lab.utility(ARITH, b)) / lab.temperature))
    assert lab.p_prefer(ARITH, a, b) == pytest.approx(expected)
    assert lab.p_prefer(ARITH, a, b) + lab.p_prefer(ARITH, b, a) == pytest.approx(1.0)
    # utility = gold + biases; the length bias is w_length per word, the format bias w_format per mark
    assert lab.utility(ARITH, b) == pytest.approx(gold(ARITH, b) + lab.w_length * 5)
    assert lab.utility(ARITH, "**4 plus 2 is 6.**") == pytest.approx(gold(ARITH, "**4 plus 2 is 6.**")
                                                                      + lab.w_length * 5 + lab.w_format * 1)


def test_rank_pairwise_marginals_match_p_prefer():
    lab = Labeler(id=0, temperature=0.5, w_length=0.1, w_format=0.1, w_agree=0.5)
    responses = ["4 plus 2 is 6.", "4 plus 2 is 7.", "12." + FILLER2, "**Answer:** 12.", "It is 11."]
    rng = random.Random(0)
    n = 6000
    above = np.zeros((5, 5))
    for _ in range(n):
        order = lab.rank(ARITH, responses, rng)
        assert sorted(order) == list(range(5))
        for pos, i in enumerate(order):
            for j in order[pos + 1:]:
                above[i, j] += 1
    for i in range(5):
        for j in range(5):
            if i != j:
                assert above[i, j] / n == pytest.approx(lab.p_prefer(ARITH, responses[i], responses[j]), abs=0.025)


def test_rank_uses_finished_flags():
    lab = LABELERS[0]
    rng = random.Random(1)
    firsts = [lab.rank(ARITH, ["4 plus 2 is 6.", "4 plus 2 is 6."], rng, finished=[False, True])[0]
              for _ in range(200)]
    assert sum(firsts) > 190   # the finished copy (index 1) comes first


def test_agreement_formula_hand_worked():
    # Same length, same formatting, no claim: the utilities differ by gold alone, 1.0 - (-0.3) = 1.3.
    a, b = "4 plus 2 is 6.", "4 plus 2 is 7."
    la = Labeler(id=0, temperature=1.3, w_length=0.5, w_format=0.2, w_agree=1.0)   # p = sigmoid(1)
    lb = Labeler(id=1, temperature=0.65, w_length=0.3, w_format=0.4, w_agree=2.0)  # p = sigmoid(2)
    pa, pb = 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-2))
    assert la.p_prefer(ARITH, a, b) == pytest.approx(pa)
    assert agreement(la, lb, ARITH, a, b) == pytest.approx(pa * pb + (1 - pa) * (1 - pb))
    assert agreement(la, lb, ARITH, a, b) == pytest.approx(0.67597, abs=1e-4)
    assert agreement(la, lb, ARITH, a, a) == pytest.approx(0.5)


def test_measured_agreement_is_about_73_percent():
    """Two labelers agree on about 0.69 of pairs of demonstrations and 0.75 of pairs of SFT samples
    (train_rm.py's held-out pairs, out/rm/eval.json); InstructGPT's contractors agreed on about 0.73."""
    agree, identical = world.measure_agreement(LABELERS, n_prompts=300, pairs_per_prompt=2, seed=0)
    assert 0.66 <= agree <= 0.74
    assert identical < 0.15


def test_headroom_ordering_on_demonstrations():
    """The calibration's point, on a small sample of `python -m nanorm.experiments.headroom
    --candidates=demonstrations`: best-of-16 by the labelers' mean utility keeps most of what gold's own
    pick gains over a random pick (the labelers are mostly right near ordinary answers), and the longest
    answer is worse than a random pick (padding costs gold more than it pleases a labeler)."""
    import tempfile
    from nanorm.experiments import headroom
    with tempfile.TemporaryDirectory() as tmp:
        res = headroom.main(["--candidates=demonstrations", "--n_prompts=200", f"--out={tmp}/h.json"])
    wr = {j: v["all"] for j, v in res["win_rate_vs_sft"].items()}
    assert wr["gold"] >= wr["labelers"] > wr["random"] > wr["length"]
    assert 0.4 < wr["random"] < 0.6
    assert res["labelers_share_of_gold_headroom"] >= 0.75
