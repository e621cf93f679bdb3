"""
Preference data: loading, checking and writing comparisons (one prompt, K >= 2 responses ranked best first).

The reward model (train_rm.py), DPO and SFT on real data all read their data through `load_comparisons`.
One record is a `Comparison`: a prompt, K responses and a ranking (response indices, best first), so a
pair is just K=2 with ranking [0, 1]. A ranking of K responses gives C(K,2) (winner, loser) pairs.

Formats, detected LINE BY LINE from the keys of each JSON object (one file may mix them):

  name     keys                                  becomes
  -------  ------------------------------------  ----------------------------------------------------------
  pair     prompt, chosen, rejected              responses [chosen, rejected], ranking [0, 1]
  hh       chosen, rejected (no prompt)          HH-RLHF transcripts: both hold the whole dialogue
                                                 "\\n\\nHuman: ...\\n\\nAssistant: ...". The prompt is their
                                                 shared prefix up to the LAST "\\n\\nAssistant:" of the
                                                 common part; the responses are what follows it
  ranked   prompt, responses, ranking            nanorm's own format (what write_comparisons writes);
           (+ optional labeler, meta)            ranking is a permutation of range(K), best first
  oasst    message_tree_id, prompt (a tree)      OpenAssistant message trees: every FULLY ranked group of
                                                 >= 2 sibling assistant replies ("rank" 0 = best, ranks a
                                                 permutation of 0..n-1) is one comparison; its prompt is
                                                 the conversation from the root to the parent. One line
                                                 can give several comparisons.

Extra keys of a pair / hh / ranked line are kept in `meta`.

A pair (pair, hh, or ranked with K = 2) may say how strong its preference is, with ONE of:
  "tie": true                   the labelers could not choose: p_chosen = 0.5
  "p_chosen": 0.8               the probability that chosen is preferred (a share of labelers, a rating)
  "votes": [2, 1]               labelers for chosen, for rejected: p_chosen = 2/3
A record is turned so that the majority's choice comes first (p_chosen >= 0.5). The RM's loss takes p as
a soft target (nanorm/reward.py::bradley_terry_loss); load_comparisons(ties="drop") skips ties instead
(counted as skipped: tie). Without any of these a pair is a plain preference (p = 1).

Dialogue prompts (hh, oasst) use the same turn labels as the chat template of nanorm/tokenizer.py,
which wraps every prompt as "User: <prompt>\\nAssistant:". A prompt is therefore written as the turns
before the reply, the first user turn unlabelled, the later ones labelled, one "\\n" between turns:

    "How do I bake bread?\\nAssistant: Do you have yeast?\\nUser: Yes."

so that format_prompt(prompt) = "User: How do I bake bread?\\nAssistant: Do you have yeast?\\nUser: Yes.\\nAssistant:"
ends with exactly one assistant marker. The marker itself is NOT part of the prompt text (the template
adds it); putting it in would make the model see "Assistant:\\nAssistant:". A single-turn prompt is then
just the question, as for the world's own prompts.

Every prompt and response is stripped of surrounding whitespace.

Validation (one policy: a file whose STRUCTURE is wrong stops the run, because the program that wrote it
has a bug; a record whose CONTENT cannot be trained on is skipped and counted):

  case                                                         what happens
  -----------------------------------------------------------  ------------------------------------------
  file missing or a directory; a JSON array, not JSON Lines    FATAL: SystemExit("error: path: ...")
  line not JSON / not UTF-8 / not an object                    FATAL: SystemExit("error: path:line: ...")
  keys match no format                                         FATAL, naming the keys found and expected
  a required field missing or of the wrong type (chosen not    FATAL, naming the field
    a string, responses not a list of strings, ranking not a
    permutation of range(K), labeler not an int, meta not a
    dict, an oasst message without text/role ...)
  ranked line with fewer than 2 responses                      FATAL
  tie / p_chosen / votes malformed, more than one of them, or  FATAL, naming the field
    on a ranked line of K > 2
  a tie, with ties="drop"                                      skipped: tie
  pair / ranked line whose "prompt" is empty or blank          FATAL (the field is as good as missing)
  hh / oasst record whose derived prompt is empty              skipped: empty_prompt
  a response that is empty or blank                            dropped: empty_response
  a response equal to a better-ranked one (chosen == rejected) dropped: duplicate_response
  a response longer than max_response_chars                   dropped: response_too_long
  oasst group of >= 2 assistant replies without any rank       skipped: unranked
  oasst group where only some replies have a rank              skipped: partly_ranked
  oasst group whose ranks are not a permutation of 0..n-1      skipped: ranks_not_permutation
  a prompt longer than max_prompt_chars                        LEFT-truncated (its last max_prompt_chars
                                                               characters: the latest turns matter most)

A dropped response leaves the record in place (ranking re-indexed, and every meta value that is a list
of K items, e.g. "finished" flags or OASST message ids, filtered the same way) if >= 2 responses remain;
otherwise the whole record is skipped for that reason. For a pair (K=2) any dropped response skips the record.
The first 5 skips/drops are printed as "warning: path:line: ...", then one summary line. Blank lines
are ignored. Nothing is ever written by load_comparisons.

The stats returned with the comparisons:
  {"records": non-blank lines read, "comparisons": n returned, "pairs": sum of C(K,2),
   "skipped": {reason: records skipped}, "dropped_responses": {reason: responses dropped from kept records},
   "prompt_truncated": n, "formats": {format: lines}}
"""

import json
import os
import random
import re
import sys
from dataclasses import dataclass, field

from nanorm.checkpoint import atomic_open

USER, ASSISTANT = "User:", "Assistant:"   # the turn labels of nanorm/tokenizer.py's chat template
HH_ASSISTANT = "\n\nAssistant:"           # the turn markers of HH-RLHF transcripts
HH_TURN = re.compile(r"\n\n(Human|Assistant):")
MAX_WARNINGS = 5


@dataclass
class Comparison:
    prompt: str              # the context the responses answer (multi-turn data: the whole dialogue so far)
    responses: list[str]     # K >= 2 candidate responses
    ranking: list[int]       # indices into responses, best first (a permutation of range(K))
    labeler: int | None = None
    meta: dict = field(default_factory=dict)   # anything else (e.g. the world's prompt dict, finished flags)
    source: str = ""         # "path:line" it came from, for error messages
    p_chosen: float | None = None   # K = 2 only: the share of labelers preferring the first-ranked response,
                                    # in [0.5, 1] (0.5: a tie); None: a plain preference (1)

    @property
    def best(self) -> str:
        return self.responses[self.ranking[0]]

    def pair_targets(self) -> list[float]:
        """The soft target of each of its C(K,2) pairs, in ranking_to_pairs order: p_chosen for a soft pair,
        else 1.0 (the better-ranked response wins)."""
        if self.p_chosen is not None:
            return [self.p_chosen]
        K = len(self.responses)
        return [1.0] * (K * (K - 1) // 2)

    @property
    def finished(self) -> list[bool]:
        """Did each response end by itself (EOS)? Samples record it in meta; other responses are whole."""
        return self.meta.get("finished") or [True] * len(self.responses)


def pair_targets(records):
    """The soft targets of all the pairs of `records`, flat, in nanorm/reward.py::kwise_pairs order."""
    return [t for rec in records for t in rec.pair_targets()]


class _Fatal(Exception):
    """A structural error in one line; load_comparisons turns it into SystemExit with path:line."""


def render_dialogue(turns):
    """[(role, text), ...] with role "user" | "assistant" -> one prompt text (see the module docstring)."""
    parts = []
    for i, (role, text) in enumerate(turns):
        label = USER if role == "user" else ASSISTANT
        parts.append(text if i == 0 and role == "user" else f"{label} {text}")
    return "\n".join(parts)


# -----------------------------------------------------------------------------
# field checks (each raises _Fatal naming the field)

def _str_field(d, key, fmt):
    if key not in d:
        raise _Fatal(f"missing field '{key}' (format {fmt} needs {_FORMAT_KEYS[fmt]})")
    if not isinstance(d[key], str):
        raise _Fatal(f"field '{key}' must be a string, got {type(d[key]).__name__}")
    return d[key]


def _prompt_field(d, fmt):
    prompt = _str_field(d, "prompt", fmt)
    if not prompt.strip():
        raise _Fatal("field 'prompt' is empty")
    return prompt


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _check_ranking(ranking, K, name="ranking"):
    if not isinstance(ranking, list) or not all(_is_int(i) for i in ranking):
        raise _Fatal(f"field '{name}' must be a list of ints, got {json.dumps(ranking)[:80]}")
    if sorted(ranking) != list(range(K)):
        raise _Fatal(f"field '{name}' must be a permutation of 0..{K - 1} (best first), got {ranking}")


SOFT_KEYS = ("tie", "p_chosen", "votes")


def _soft_label(d, K):
    """The optional soft label of a pair: "tie": true (p = 0.5), "p_chosen": the probability that chosen
    (the first-ranked response) is preferred, or "votes": [for chosen, for rejected]. None without one."""
    given = [k for k in SOFT_KEYS if k in d]
    if not given:
        return None
    if len(given) > 1:
        raise _Fatal(f"fields {given} each give the label's strength; give one of them")
    if K != 2:
        raise _Fatal(f"field '{given[0]}' is for two responses, got {K}")
    key, v = given[0], d[given[0]]
    if key == "tie":
        if not isinstance(v, bool):
            raise _Fatal(f"field 'tie' must be true or false, got {json.dumps(v)[:40]}")
        return 0.5 if v else None
    if key == "p_chosen":
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise _Fatal(f"field 'p_chosen' must be a number in [0, 1], got {json.dumps(v)[:40]}")
        return float(v)
    if (not isinstance(v, list) or len(v) != 2 or not all(_is_int(x) and x >= 0 for x in v) or sum(v) == 0):
        raise _Fatal(f"field 'votes' must be [votes for chosen, votes for rejected], two counts >= 0 "
                     f"not both 0, got {json.dumps(v)[:40]}")
    return v[0] / sum(v)


# -----------------------------------------------------------------------------
# one parser per format: a JSON object -> a list of (prompt, responses, ranking, labeler, meta, skip_reason)

_FORMAT_KEYS = {"pair": "{prompt, chosen, rejected}", "hh": "{chosen, rejected}",
                "ranked": "{prompt, responses, ranking}", "oasst": "{message_tree_id, prompt}"}


def _detect(d):
    if "message_tree_id" in d:
        return "oasst"
    if "responses" in d or "ranking" in d:
        return "ranked"
    if "chosen" in d or "rejected" in d:
        return "pair" if "prompt" in d else "hh"
    expected = " | ".join(f"{k} {v}" for k, v in _FORMAT_KEYS.items())
    raise _Fatal(f"no known format matches the keys {sorted(d)}; expected one of: {expected}")


def _extra(d, known):
    return {k: v for k, v in d.items() if k not in known}


def _parse_pair(d):
    prompt = _prompt_field(d, "pair")
    chosen, rejected = _str_field(d, "chosen", "pair"), _str_field(d, "rejected", "pair")
    meta = {**_extra(d, ("prompt", "chosen", "rejected", *SOFT_KEYS)), "p_chosen": _soft_label(d, 2)}
    return [(prompt, [chosen, rejected], [0, 1], None, meta, None)]


def _parse_hh(d):
    chosen, rejected = _str_field(d, "chosen", "hh"), _str_field(d, "rejected", "hh")
    common = os.path.commonprefix([chosen, rejected])
    k = common.rfind(HH_ASSISTANT)
    meta = {**_extra(d, ("chosen", "rejected", *SOFT_KEYS)), "p_chosen": _soft_label(d, 2)}
    if k < 0:   # the two dialogues share no assistant turn marker: no prompt to train on
        return [("", [chosen, rejected], [0, 1], None, meta, "empty_prompt")]
    start = k + len(HH_ASSISTANT)
    # the shared dialogue before the final marker -> turns ("\n\nHuman: a\n\nAssistant: b\n\nHuman: c")
    pieces = HH_TURN.split(chosen[:k])       # [lead, role, text, role, text, ...]
    turns = [("user", pieces[0].strip())] if pieces[0].strip() else []
    for role, text in zip(pieces[1::2], pieces[2::2]):
        turns.append(("user" if role == "Human" else "assistant", text.strip()))
    return [(render_dialogue(turns), [chosen[start:], rejected[start:]], [0, 1], None, meta, None)]


def _parse_ranked(d):
    prompt = _prompt_field(d, "ranked")
    for key in ("responses", "ranking"):
        if key not in d:
            raise _Fatal(f"missing field '{key}' (format ranked needs {_FORMAT_KEYS['ranked']})")
    responses = d["responses"]
    if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
        raise _Fatal("field 'responses' must be a list of strings")
    if len(responses) < 2:
        raise _Fatal(f"field 'responses' must hold at least 2 responses, got {len(responses)}")
    _check_ranking(d["ranking"], len(responses))
    labeler = d.get("labeler")
    if labeler is not None and not _is_int(labeler):
        raise _Fatal(f"field 'labeler' must be an int or null, got {json.dumps(labeler)[:40]}")
    meta = d.get("meta", {})
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise _Fatal(f"field 'meta' must be an object, got {type(meta).__name__}")
    meta = {**_extra(d, ("prompt", "responses", "ranking", "labeler", "meta", *SOFT_KEYS)), **meta,
            "p_chosen": _soft_label(d, len(responses))}
    return [(prompt, list(responses), list(d["ranking"]), labeler, meta, None)]


def _check_message(m, name):
    if not isinstance(m, dict):
        raise _Fatal(f"field '{name}' must be a message object")
    if not isinstance(m.get("text"), str):
        raise _Fatal(f"field '{name}.text' must be a string")
    if m.get("role") not in ("prompter", "assistant"):
        raise _Fatal(f"field '{name}.role' must be 'prompter' or 'assistant', got {json.dumps(m.get('role'))[:40]}")
    if not isinstance(m.get("replies", []), list):
        raise _Fatal(f"field '{name}.replies' must be a list")
    rank = m.get("rank")
    if rank is not None and not _is_int(rank):
        raise _Fatal(f"field '{name}.rank' must be an int or null, got {json.dumps(rank)[:40]}")


def _parse_oasst(d):
    if not isinstance(d["message_tree_id"], str):
        raise _Fatal("field 'message_tree_id' must be a string")
    if "prompt" not in d:
        raise _Fatal(f"missing field 'prompt' (format oasst needs {_FORMAT_KEYS['oasst']})")
    out = []

    def walk(node, name, path):   # path: the turns from the root down to node's parent
        _check_message(node, name)
        path = path + [("user" if node["role"] == "prompter" else "assistant", node["text"].strip())]
        replies = node.get("replies", [])
        for i, child in enumerate(replies):
            _check_message(child, f"{name}.replies[{i}]")
        group = [c for c in replies if c["role"] == "assistant"]
        if len(group) >= 2:
            ranks = [c.get("rank") for c in group]
            reason = None
            if all(r is None for r in ranks):
                reason = "unranked"
            elif any(r is None for r in ranks):
                reason = "partly_ranked"
            elif sorted(ranks) != list(range(len(group))):
                reason = "ranks_not_permutation"
            ranking = sorted(range(len(group)), key=lambda j: ranks[j]) if reason is None else []
            meta = {"message_tree_id": d["message_tree_id"], "parent_id": node.get("message_id"),
                    "message_ids": [c.get("message_id") for c in group]}
            out.append((render_dialogue(path), [c["text"] for c in group], ranking, None, meta, reason))
        for i, child in enumerate(replies):
            walk(child, f"{name}.replies[{i}]", path)

    walk(d["prompt"], "prompt", [])
    return out


_PARSERS = {"pair": _parse_pair, "hh": _parse_hh, "ranked": _parse_ranked, "oasst": _parse_oasst}


# -----------------------------------------------------------------------------
# content checks: drop bad responses, skip records that can't be trained on

def _clean_responses(responses, ranking, max_response_chars):
    """Strip, then drop empty / duplicate / over-long responses. Returns (responses, ranking, kept, drops):
    kept = the original indices kept, drops = [(original index, reason)]. A duplicate loses to the
    better-ranked copy."""
    responses = [r.strip() for r in responses]
    keep, drops, seen = set(), [], set()
    for i in ranking:   # best first, so the better-ranked copy of a duplicate is the one kept
        r = responses[i]
        if not r:
            drops.append((i, "empty_response"))
        elif r in seen:
            drops.append((i, "duplicate_response"))
        elif max_response_chars is not None and len(r) > max_response_chars:
            drops.append((i, "response_too_long"))
        else:
            keep.add(i)
            seen.add(r)
    kept = sorted(keep)
    new_index = {old: new for new, old in enumerate(kept)}
    return [responses[i] for i in kept], [new_index[i] for i in ranking if i in keep], kept, drops


def _bump(counts, key, n=1):
    counts[key] = counts.get(key, 0) + n


def load_comparisons(path, max_prompt_chars=2000, max_response_chars=1000, limit=None, ties="half"):
    """Read a JSONL file of comparisons in any supported format -> (comparisons, stats).

    max_prompt_chars / max_response_chars: None disables the limit. limit: stop once this many comparisons
    are collected (the rest of the file is neither read nor checked). ties: "half" keeps a tie as a pair
    with p_chosen 0.5 (half a win each way), "drop" skips it (counted as skipped: tie).
    """
    if ties not in ("half", "drop"):
        raise ValueError(f"ties must be 'half' or 'drop', got {ties!r}")
    if os.path.isdir(path):
        raise SystemExit(f"error: {path}: is a directory, expected a JSON Lines file")
    if not os.path.isfile(path):
        raise SystemExit(f"error: {path}: file not found")
    comparisons = []
    stats = {"records": 0, "comparisons": 0, "pairs": 0, "skipped": {}, "dropped_responses": {},
             "prompt_truncated": 0, "formats": {}}
    n_warnings = 0

    def warn(where, msg):
        nonlocal n_warnings
        n_warnings += 1
        if n_warnings <= MAX_WARNINGS:
            print(f"warning: {where}: {msg}", file=sys.stderr)

    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if limit is not None and len(comparisons) >= limit:
                break
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                stats["records"] += 1
                if stats["records"] == 1 and line.lstrip().startswith("["):
                    raise SystemExit(f"error: {path}: a JSON array; expected JSON Lines, one record per line "
                                     f"(convert it with: jq -c '.[]' {path} > records.jsonl)")
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as e:
                    raise _Fatal(f"not valid JSON ({e.msg} at column {e.colno})") from None
                if not isinstance(d, dict):
                    raise _Fatal(f"expected a JSON object, got a JSON {type(d).__name__}")
                fmt = _detect(d)
                records = _PARSERS[fmt](d)
            except UnicodeDecodeError:
                raise SystemExit(f"error: {where}: not valid UTF-8") from None
            except _Fatal as e:
                msg = " ".join(str(e).split("\n"))
                raise SystemExit(f"error: {where}: {msg}") from None
            _bump(stats["formats"], fmt)

            for prompt, responses, ranking, labeler, meta, reason in records:
                p_chosen = meta.pop("p_chosen", None)
                if p_chosen is not None and p_chosen < 0.5:   # the majority preferred the other: face it first
                    ranking, p_chosen = ranking[::-1], 1.0 - p_chosen
                if reason is None and p_chosen == 0.5 and ties == "drop":
                    reason = "tie"
                if reason is not None:      # a group/record the parser already knows is unusable
                    _bump(stats["skipped"], reason)
                    under = f": the replies to message {meta['parent_id']}" if "parent_id" in meta else ""
                    warn(where, f"skipped ({reason}){under}")
                    continue
                prompt = prompt.strip()
                if not prompt:
                    _bump(stats["skipped"], "empty_prompt")
                    warn(where, "skipped (empty_prompt)")
                    continue
                n_before = len(responses)
                responses, ranking, kept, drops = _clean_responses(responses, ranking, max_response_chars)
                if len(responses) < 2:
                    reason = drops[0][1]
                    _bump(stats["skipped"], reason)
                    detail = {"empty_response": "a response is empty",
                              "duplicate_response": "the responses are the same text",
                              "response_too_long": f"a response is over {max_response_chars} characters"}[reason]
                    warn(where, f"skipped ({reason}): {detail}")
                    continue
                for i, r in drops:
                    _bump(stats["dropped_responses"], r)
                    warn(where, f"dropped response {i} ({r}); {len(responses)} remain")
                if drops:   # per-response meta lists (finished flags, message ids) follow their responses
                    meta = {k: [v[i] for i in kept] if isinstance(v, list) and len(v) == n_before else v
                            for k, v in meta.items()}
                if max_prompt_chars is not None and len(prompt) > max_prompt_chars:
                    prompt = prompt[-max_prompt_chars:]   # keep the end: the latest turns matter most
                    stats["prompt_truncated"] += 1
                K = len(responses)
                comparisons.append(Comparison(prompt, responses, ranking, labeler, meta, where,
                                              p_chosen=p_chosen if p_chosen != 1.0 else None))
                stats["pairs"] += K * (K - 1) // 2
                if limit is not None and len(comparisons) >= limit:
                    break

    stats["comparisons"] = len(comparisons)
    n_skipped, n_dropped = sum(stats["skipped"].values()), sum(stats["dropped_responses"].values())
    if n_warnings:
        hidden = n_warnings - min(n_warnings, MAX_WARNINGS)
        print(f"warning: {path}: skipped {n_skipped} records {stats['skipped']}, dropped {n_dropped} responses "
              f"{stats['dropped_responses']}" + (f" ({hidden} more warnings not shown)" if hidden else ""),
              file=sys.stderr)
    return comparisons, stats


# -----------------------------------------------------------------------------
# writing, SFT pairs, held-out split

def write_comparisons(path, comparisons):
    """Write comparisons as JSONL in the "ranked" format. Atomic: a failure leaves any old file intact."""
    with atomic_open(path) as f:
        for c in comparisons:
            if len(c.responses) < 2 or sorted(c.ranking) != list(range(len(c.responses))):
                raise ValueError(f"comparison from {c.source or '?'}: ranking {c.ranking} is not a "
                                 f"permutation of 0..{len(c.responses) - 1} (K >= 2)")
            record = {"prompt": c.prompt, "responses": c.responses, "ranking": c.ranking,
                      "labeler": c.labeler, "meta": c.meta}
            if c.p_chosen is not None:
                record["p_chosen"] = c.p_chosen
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def sft_examples(comparisons):
    """(prompt, best response) for supervised fine-tuning on real data."""
    return [(c.prompt, c.responses[c.ranking[0]]) for c in comparisons]


def split_holdout(comparisons, frac=0.1, seed=0):
    """Deterministic (train, held_out) split, by GROUP so that nothing leaks across it.

    A group is the OASST message tree (its comparisons share the opening question) or, otherwise, the
    prompt text (the same prompt asked twice stays on one side). round(frac * n_groups) shuffled groups
    (at least 1 when frac > 0 and there are >= 2 groups) are held out. Both lists keep the input order.
    """
    if not 0 <= frac < 1:
        raise ValueError(f"frac must be in [0, 1), got {frac}")

    def key(c):
        return ("tree", c.meta["message_tree_id"]) if "message_tree_id" in c.meta else ("prompt", c.prompt)

    groups = sorted(set(key(c) for c in comparisons))
    random.Random(seed).shuffle(groups)
    n_held = round(frac * len(groups))
    if frac > 0 and len(groups) >= 2:
        n_held = min(max(n_held, 1), len(groups) - 1)
    held = set(groups[:n_held])
    train = [c for c in comparisons if key(c) not in held]
    held_out = [c for c in comparisons if key(c) in held]
    return train, held_out


def load_split(path, eval_frac, seed, max_response_chars=1000, ties="half"):
    """A comparisons file -> (train records, held-out records, load stats), split as EVERY stage splits it
    (train_sft.py, train_rm.py), so an SFT model trained on a file never saw the RM's held-out records.

    A file of rankings that train_rm.py collected in the world (each record has meta["world_prompt"])
    is not split: it is all training data, and held-out is None (the world ranks fresh held-out prompts).
    """
    records, stats = load_comparisons(path, max_response_chars=max_response_chars or None, ties=ties)
    if not records:
        raise SystemExit(f"error: {path}: no usable comparisons ({json.dumps(stats)})")
    if all("world_prompt" in r.meta for r in records):
        return records, None, stats
    train, held_out = split_holdout(records, eval_frac, seed=seed)
    if not train or not held_out:
        raise SystemExit(f"error: {path}: {len(records)} usable comparisons, too few to hold some out "
                         f"(--eval_frac={eval_frac})")
    return train, held_out, stats
