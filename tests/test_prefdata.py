"""Preference data: every format, the real HH-RLHF / OASST files, fatal vs skipped records, atomic writes."""

import json
import os

import pytest

from nanorm.prefdata import Comparison, load_comparisons, sft_examples, split_holdout, write_comparisons
from nanorm.tokenizer import format_prompt

REALDATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "realdata")
HELPFUL = os.path.join(REALDATA, "hh_rlhf_helpful_base_test.jsonl")
HARMLESS = os.path.join(REALDATA, "hh_rlhf_harmless_base_test.jsonl")
OASST = os.path.join(REALDATA, "oasst_en_100_tree.jsonl")
NO_LIMITS = dict(max_prompt_chars=None, max_response_chars=None)

needs_realdata = pytest.mark.skipif(not os.path.isdir(REALDATA), reason="shared/realdata not beside the repo")


def write_lines(path, objs):
    with open(path, "w", encoding="utf-8") as f:
        for o in objs:
            f.write((o if isinstance(o, str) else json.dumps(o)) + "\n")
    return str(path)


# -----------------------------------------------------------------------------
# real data


@needs_realdata
def test_hh_helpful(capsys):
    cs, st = load_comparisons(HELPFUL, **NO_LIMITS)
    assert st["records"] == 2000 and st["formats"] == {"hh": 2000}
    # line 722 has chosen == rejected; lines 121, 741, 1215 have a blank rejected response
    assert st["skipped"] == {"duplicate_response": 1, "empty_response": 3}
    assert st["comparisons"] == st["pairs"] == len(cs) == 2000 - 4
    err = capsys.readouterr().err
    assert err.count("(duplicate_response)") == 1
    assert "hh_rlhf_helpful_base_test.jsonl:722: skipped (duplicate_response)" in err
    assert not any(c.source.endswith(f":{n}") for c in cs for n in (121, 722, 741, 1215))

    # line 1, checked by hand
    with open(HELPFUL, encoding="utf-8") as f:
        first = json.loads(f.readline())
    c = cs[0]
    assert c.source.endswith("hh_rlhf_helpful_base_test.jsonl:1")
    assert c.prompt == "Do you know why turkeys became the official food of thanksgiving?"
    assert c.responses[0].startswith("To be honest, I don’t know anything about that.")
    assert c.responses[1].startswith("I know that the American Indians were the first")
    assert c.responses[0] == first["chosen"].split("\n\nAssistant:")[1].strip()
    assert c.ranking == [0, 1] and c.labeler is None
    assert sft_examples(cs)[0] == (c.prompt, c.responses[0])

    # line 2 is multi-turn: earlier turns are labelled, the template adds the one final "Assistant:"
    c = cs[1]
    assert c.prompt.startswith("How can I find out what types of butterflies are in my area?\n"
                               "Assistant: Which location are you in?\nUser: I am in Oregon.\nAssistant: ")
    assert c.prompt.endswith("\nUser: Great. What are some common species then?")
    for c in cs:
        text = format_prompt(c.prompt)
        assert text.startswith("User: ") and text.endswith("\nAssistant:")
        assert not c.prompt.endswith("Assistant:") and "\n\nHuman:" not in c.prompt
        assert all(r and r == r.strip() for r in c.responses)


@needs_realdata
def test_hh_default_limits_skip_long_responses_and_truncate_long_prompts():
    cs, st = load_comparisons(HELPFUL)   # 2000 / 1000 characters
    assert st["skipped"]["response_too_long"] == 40 and st["prompt_truncated"] == 35
    assert st["comparisons"] == 2000 - 4 - 40
    assert max(len(c.prompt) for c in cs) == 2000
    assert max(len(r) for c in cs for r in c.responses) <= 1000


@needs_realdata
def test_hh_harmless_loads():
    cs, st = load_comparisons(HARMLESS, **NO_LIMITS)
    assert st["records"] == 2000 and st["skipped"] == {"empty_response": 4}
    assert len(cs) == st["pairs"] == 1996
    assert all(format_prompt(c.prompt).endswith("\nAssistant:") and len(c.responses) == 2 for c in cs)


@needs_realdata
def test_oasst_trees():
    cs, st = load_comparisons(OASST, **NO_LIMITS)
    assert st["records"] == 100 and st["formats"] == {"oasst": 100}
    assert st["comparisons"] == 211 and st["pairs"] == 751          # as the README counts them
    assert st["skipped"] == {"partly_ranked": 1, "unranked": 2}
    sizes = {}
    for c in cs:
        sizes[len(c.responses)] = sizes.get(len(c.responses), 0) + 1
    assert sizes == {2: 57, 3: 116, 4: 27, 5: 3, 6: 6, 8: 1, 9: 1}

    # line 59, checked by hand: the group under "Thanks but would the process be simpler ...",
    # three turns deep; and the partly ranked group (ranks [0, 1, 2, None]) under "thank youuu!!!"
    line59 = [c for c in cs if c.source.endswith(":59")]
    c = next(c for c in line59 if c.meta["parent_id"].startswith("c303987a"))
    assert c.prompt.startswith("How do I create an extension/add-on that will work for both ")
    turns = c.prompt.split("\nAssistant: ")
    assert len(turns) == 2 and turns[1].startswith("Creating an extension that works for both Firefox and Chrome")
    assert turns[1].split("\nUser: ")[1].startswith("Thanks but would the process be simpler and easier")
    assert [m[:8] for m in c.meta["message_ids"]] == ["c04ff4df", "2fdde753"]
    assert c.ranking == [0, 1] and c.best.startswith("Yes, discarding cross-browser compatibility")
    assert not any("thank youuu!!!" in c.prompt for c in line59)


def test_oasst_ranks_become_best_first_order(tmp_path, capsys):
    def msg(role, text, rank=None, replies=()):
        m = {"message_id": text, "role": role, "text": text, "replies": list(replies)}
        if rank is not None:
            m["rank"] = rank
        return m
    tree = msg("prompter", "Q1", replies=[
        msg("assistant", "a", 2), msg("assistant", "b", 0),
        msg("assistant", "c", 1, replies=[msg("prompter", "Q2", replies=[
            msg("assistant", "x", 1), msg("assistant", "y")])]),      # partly ranked: skipped
        msg("prompter", "not an answer")])
    path = write_lines(tmp_path / "t.jsonl", [{"message_tree_id": "t1", "prompt": tree}])
    cs, st = load_comparisons(path)
    assert len(cs) == 1 and st["skipped"] == {"partly_ranked": 1} and st["pairs"] == 3
    c = cs[0]
    assert c.prompt == "Q1" and c.responses == ["a", "b", "c"]
    assert c.ranking == [1, 2, 0]                                  # b (rank 0) > c (rank 1) > a (rank 2)
    assert c.meta == {"message_tree_id": "t1", "parent_id": "Q1", "message_ids": ["a", "b", "c"]}
    assert f"{path}:1: skipped (partly_ranked)" in capsys.readouterr().err


# -----------------------------------------------------------------------------
# round trips


def test_pair_format_round_trip(tmp_path):
    path = write_lines(tmp_path / "pairs.jsonl", [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5", "id": 7},
        "",                                                            # blank lines are ignored
        {"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}])
    cs, st = load_comparisons(path)
    assert st["records"] == 2 and st["formats"] == {"pair": 2} and st["pairs"] == 2
    assert [(c.prompt, c.responses, c.ranking) for c in cs] == [("2+2?", ["4", "5"], [0, 1]),
                                                               ("Hi", ["Hello!", "Go away."], [0, 1])]
    assert cs[0].meta == {"id": 7} and cs[1].source == f"{path}:3"
    out = str(tmp_path / "out" / "ranked.jsonl")
    write_comparisons(out, cs)
    back, st2 = load_comparisons(out)
    assert st2["formats"] == {"ranked": 2}
    assert [(c.prompt, c.responses, c.ranking, c.labeler, c.meta) for c in back] == \
           [(c.prompt, c.responses, c.ranking, c.labeler, c.meta) for c in cs]


def test_ranked_format_round_trip(tmp_path):
    cs = [Comparison("Name a colour.", ["red", "blue", "banana"], [1, 0, 2], labeler=3,
                     meta={"prompt": {"family": "colour"}, "finished": [True, True, False]}),
          Comparison("Unicode: é ✓", ["ü", "ß"], [1, 0])]
    path = str(tmp_path / "c.jsonl")
    write_comparisons(path, cs)
    assert not os.path.exists(path + ".tmp")
    with open(path, encoding="utf-8") as f:
        first = json.loads(f.readline())
    assert set(first) == {"prompt", "responses", "ranking", "labeler", "meta"}
    back, st = load_comparisons(path)
    assert st == {"records": 2, "comparisons": 2, "pairs": 4, "skipped": {}, "dropped_responses": {},
                  "prompt_truncated": 0, "formats": {"ranked": 2}}
    for a, b in zip(cs, back):
        assert (a.prompt, a.responses, a.ranking, a.labeler, a.meta) == \
               (b.prompt, b.responses, b.ranking, b.labeler, b.meta)
    assert sft_examples(back) == [("Name a colour.", "blue"), ("Unicode: é ✓", "ß")]


# -----------------------------------------------------------------------------
# fatal errors: one line naming the file, the line and the field


@pytest.mark.parametrize("line, words", [
    ('{"prompt": "x", "chosen": "a", "rejected": ', ["not valid JSON"]),
    ('["prompt", "chosen"]', ["JSON object", "list"]),
    ({"prompt": "x", "chosen": "a"}, ["'rejected'", "missing"]),
    ({"prompt": "x", "chosen": ["a"], "rejected": "b"}, ["'chosen'", "string"]),
    ({"prompt": "", "chosen": "a", "rejected": "b"}, ["'prompt'", "empty"]),
    ({"prompt": "x", "responses": "ab", "ranking": [0, 1]}, ["'responses'", "list of strings"]),
    ({"prompt": "x", "responses": ["a", 2], "ranking": [0, 1]}, ["'responses'", "list of strings"]),
    ({"prompt": "x", "responses": ["a"], "ranking": [0]}, ["'responses'", "at least 2"]),
    ({"prompt": "x", "responses": ["a", "b"], "ranking": [0, 0]}, ["'ranking'", "permutation"]),
    ({"prompt": "x", "responses": ["a", "b"], "ranking": [1, 2]}, ["'ranking'", "permutation"]),
    ({"prompt": "x", "responses": ["a", "b"], "ranking": [0, 1], "labeler": "bob"}, ["'labeler'"]),
    ({"question": "x", "answer": "y"}, ["no known format", "'answer'", "'question'", "chosen", "responses"]),
    ({"message_tree_id": "t", "prompt": {"role": "prompter", "text": "q", "replies": [
        {"role": "assistant", "text": "a", "rank": "0"}]}}, ["'prompt.replies[0].rank'"]),
    ({"prompt": "x", "chosen": "a", "rejected": "b", "tie": "yes"}, ["'tie'", "true or false"]),
    ({"prompt": "x", "chosen": "a", "rejected": "b", "p_chosen": 1.5}, ["'p_chosen'", "[0, 1]"]),
    ({"prompt": "x", "chosen": "a", "rejected": "b", "p_chosen": True}, ["'p_chosen'", "[0, 1]"]),
    ({"prompt": "x", "chosen": "a", "rejected": "b", "votes": [0, 0]}, ["'votes'", "not both 0"]),
    ({"prompt": "x", "chosen": "a", "rejected": "b", "votes": [2]}, ["'votes'"]),
    ({"prompt": "x", "chosen": "a", "rejected": "b", "tie": True, "votes": [1, 1]}, ["'tie'", "'votes'", "one"]),
    ({"prompt": "x", "responses": ["a", "b", "c"], "ranking": [0, 1, 2], "tie": True}, ["'tie'", "two responses"]),
])
def test_fatal_errors_are_one_line(tmp_path, line, words):
    path = write_lines(tmp_path / "bad.jsonl", [{"prompt": "ok", "chosen": "a", "rejected": "b"}, line])
    with pytest.raises(SystemExit) as e:
        load_comparisons(path)
    msg = str(e.value)
    assert msg.startswith(f"error: {path}:2: ") and "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_ties_votes_and_soft_labels(tmp_path):
    # the fixture: a plain pair, a tie in each format that can hold one, votes against the "chosen" one
    # (the record turns round), a probability, and a tie that is also a duplicate (skipped as a duplicate)
    path = write_lines(tmp_path / "soft.jsonl", [
        {"prompt": "p1", "chosen": "a", "rejected": "b"},
        {"prompt": "p2", "chosen": "a", "rejected": "b", "tie": True},
        {"chosen": "\n\nHuman: p3\n\nAssistant: a", "rejected": "\n\nHuman: p3\n\nAssistant: b", "tie": True},
        {"prompt": "p4", "responses": ["a", "b"], "ranking": [0, 1], "tie": True},
        {"prompt": "p5", "chosen": "a", "rejected": "b", "votes": [1, 2]},
        {"prompt": "p6", "chosen": "a", "rejected": "b", "p_chosen": 0.8, "source_id": 7},
        {"prompt": "p7", "chosen": "a", "rejected": "b", "tie": False},
        {"prompt": "p8", "chosen": "a", "rejected": "a", "tie": True}])
    cs, st = load_comparisons(path)
    by = {c.prompt: c for c in cs}
    assert st["skipped"] == {"duplicate_response": 1} and len(cs) == 7
    assert [by[p].p_chosen for p in ("p1", "p2", "p3", "p4", "p6", "p7")] == [None, 0.5, 0.5, 0.5, 0.8, None]
    assert by["p5"].responses == ["a", "b"] and by["p5"].ranking == [1, 0]        # 2 of 3 preferred b: b first
    assert by["p5"].p_chosen == pytest.approx(2 / 3) and by["p5"].best == "b"
    assert by["p6"].meta == {"source_id": 7}                                     # the label is not left in meta
    assert by["p6"].pair_targets() == [0.8] and by["p1"].pair_targets() == [1.0]
    assert Comparison("q", ["a", "b", "c"], [2, 0, 1]).pair_targets() == [1.0, 1.0, 1.0]
    # the rule for ties: dropped and counted, the rest as before
    dropped, st = load_comparisons(path, ties="drop")
    assert st["skipped"] == {"tie": 4}                  # the duplicate tie too: a tie goes before its texts are read
    assert [c.prompt for c in dropped] == ["p1", "p5", "p6", "p7"]
    # what train_rm.py writes (the ranked format) keeps the strength of each label
    write_comparisons(str(tmp_path / "back.jsonl"), cs)
    back, _ = load_comparisons(str(tmp_path / "back.jsonl"))
    assert [(c.ranking, c.p_chosen) for c in back] == [(c.ranking, c.p_chosen) for c in cs]


def test_missing_file_is_fatal(tmp_path):
    with pytest.raises(SystemExit, match="nope.jsonl: file not found"):
        load_comparisons(str(tmp_path / "nope.jsonl"))


# -----------------------------------------------------------------------------
# skipped and dropped records, truncated prompts


def test_skips_drops_and_truncation(tmp_path, capsys):
    path = write_lines(tmp_path / "mixed.jsonl", [
        {"prompt": "p1", "chosen": "  ", "rejected": "b"},                          # 1 skipped: empty
        {"prompt": "p2", "chosen": "a" * 11, "rejected": "b"},                      # 2 skipped: too long
        {"prompt": "p3", "chosen": "same", "rejected": "same "},                    # 3 skipped: duplicate
        {"prompt": "0123456789abcdef", "chosen": "a", "rejected": "b"},             # 4 prompt truncated
        {"prompt": "p5", "responses": ["x", "", "y", "x", "z" * 20], "ranking": [3, 2, 1, 0, 4],  # 5: 3 dropped
         "meta": {"finished": [1, 2, 3, 4, 5], "world_prompt": {"family": "f"}, "tags": ["t"]}},
        {"prompt": "p6", "responses": ["x", " ", "x"], "ranking": [0, 1, 2]},       # 6 skipped: < 2 left
        {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c\n\nAssistant: b"},  # 7 no prompt
    ])
    cs, st = load_comparisons(path, max_prompt_chars=10, max_response_chars=10)
    assert st["skipped"] == {"empty_response": 2, "response_too_long": 1, "duplicate_response": 1,
                             "empty_prompt": 1}
    assert st["dropped_responses"] == {"duplicate_response": 1, "empty_response": 1, "response_too_long": 1}
    assert st["prompt_truncated"] == 1 and st["records"] == 7 and st["comparisons"] == 2 and st["pairs"] == 2
    assert cs[0].prompt == "6789abcdef"                             # the LAST 10 characters are kept
    # line 5: "x" at index 3 is ranked above the copy at index 0, so index 3 is the one kept
    assert cs[1].source == f"{path}:5" and cs[1].responses == ["y", "x"] and cs[1].ranking == [1, 0]
    assert cs[1].meta == {"finished": [3, 4], "world_prompt": {"family": "f"}, "tags": ["t"]}
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"warning: {path}:1: skipped (empty_response): a response is empty"
    assert err[1].startswith(f"warning: {path}:2: skipped (response_too_long)")
    assert len(err) == 6 and err[5].startswith(f"warning: {path}: skipped 5 records")


def test_limit_stops_early(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [{"prompt": f"p{i}", "chosen": "a", "rejected": "b"} for i in range(5)]
                       + ["not json"])
    cs, st = load_comparisons(path, limit=3)
    assert [c.prompt for c in cs] == ["p0", "p1", "p2"] and st["records"] == 3


# -----------------------------------------------------------------------------
# atomic writes, held-out split


def test_failing_write_leaves_old_file_and_no_tmp(tmp_path):
    path = str(tmp_path / "c.jsonl")
    write_comparisons(path, [Comparison("p", ["a", "b"], [0, 1])])
    with open(path, "rb") as f:
        before = f.read()
    bad = [Comparison("p", ["a", "b"], [0, 1]), Comparison("q", ["a", "b"], [0, 1], meta={"x": object()})]
    with pytest.raises(TypeError):
        write_comparisons(path, bad)
    with pytest.raises(ValueError, match="permutation"):
        write_comparisons(path, [Comparison("p", ["a", "b"], [0, 0])])
    with open(path, "rb") as f:
        assert f.read() == before
    assert os.listdir(tmp_path) == ["c.jsonl"]


def test_split_holdout_is_deterministic_and_disjoint():
    cs = [Comparison(f"prompt {i % 40}", ["a", "b"], [0, 1], source=f"f:{i}") for i in range(100)]
    cs += [Comparison(f"tree {i}", ["a", "b"], [1, 0], meta={"message_tree_id": "T"}, source=f"t:{i}")
           for i in range(5)]
    train, held = split_holdout(cs, frac=0.1, seed=0)
    train2, held2 = split_holdout(cs, frac=0.1, seed=0)
    assert [c.source for c in train] == [c.source for c in train2]
    assert [c.source for c in held] == [c.source for c in held2]
    assert len(train) + len(held) == len(cs)
    assert {c.source for c in train}.isdisjoint(c.source for c in held)
    # no prompt (or OASST tree) on both sides
    group = lambda c: c.meta.get("message_tree_id", c.prompt)   # noqa: E731
    assert {group(c) for c in train}.isdisjoint(group(c) for c in held)
    assert len({group(c) for c in held}) == round(0.1 * 41)
    assert [c.source for c in split_holdout(cs, frac=0.1, seed=1)[1]] != [c.source for c in held]
    assert split_holdout(cs, frac=0.0) == (cs, [])
