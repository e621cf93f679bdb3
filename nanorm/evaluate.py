"""
Judging a policy in the world: proxy reward (the RM), gold score, KL to SFT, and what it learned to do.

Used by train_ppo.py, train_dpo.py and the reward-hacking lab, so that every stage is measured the same
way. Because gold is code, a policy can be judged by what a careful human wants, not only by the RM.

    proxy  : the normalised RM score of a finished response; a truncated one (no EOS) gets the fixed
             truncation penalty instead, as in PPO
    gold   : world.gold, in [-1, 1]
    kl     : sum over response tokens of log pi(y_t) - log pi_sft(y_t) for the policy's own samples,
             a Monte-Carlo estimate of KL(pi || pi_sft) per response, in nats
    win    : the gold labeler compares one sample of each policy per prompt; ties count half
"""

import os
import random
import sys

import numpy as np
import torch

from nanorm import world
from nanorm.checkpoint import load_checkpoint, model_config
from nanorm.config import SEED_LABELER_B, SEED_SFT_EVAL, SEED_TEST, SEED_VAL_EVAL, autocast
from nanorm.data import join_prompt_response, joined_response_mask, response_logprobs, sample_responses
from nanorm.model import GPT, ScalarHeadModel, pad
from nanorm.prefdata import pair_targets
from nanorm.reward import (RewardEnsemble, SurpriseRM, bayes_ceiling, expected_calibration_error, kwise_pairs,
                           pairwise_accuracy)


def load_policy(path, tok, device, kinds=("sft", "ppo", "dpo")):
    ckpt = load_checkpoint(path, kinds, tok)
    model = GPT(model_config(ckpt)).to(device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def load_policy_ref_rm(sft_path, rm_path, tok, device, objective="mean", uwo_lambda=1.0):
    """What PPO and DPO start from: the policy (a trainable copy of the SFT model), the frozen SFT
    reference pi_ref and the frozen, normalised reward model, which must have been trained on this SFT
    model's samples (check_same_sft). Returns (policy, ref, rm, the SFT checkpoint).
    rm_path may name several RMs, comma-separated: then rm is their RewardEnsemble under `objective`."""
    policy, sft_ckpt = load_policy(sft_path, tok, device, kinds="sft")
    ref, _ = load_policy(sft_path, tok, device, kinds="sft")
    members = []
    for path in rm_path.split(","):
        member, rm_ckpt = load_reward_model(path, tok, device)
        check_same_sft(path, rm_ckpt, sft_path, sft_ckpt)     # its rankings are of this SFT model's samples
        if members and member.cfg != members[0].cfg:
            raise SystemExit(f"error: {path}: field 'model_config' differs from that of the first RM in the "
                             f"ensemble ({rm_path.split(',')[0]}); an ensemble's members share one shape")
        members.append(member)
    rm = members[0] if len(members) == 1 else RewardEnsemble(members, objective, uwo_lambda)
    for p in list(ref.parameters()) + list(rm.parameters()):
        p.requires_grad_(False)
    return policy, ref, rm, sft_ckpt


def load_reward_model(path, tok, device):
    """The RM with its normalisation (gain * r + bias) folded into the scalar head, so it outputs the
    normalised reward directly: SFT samples score mean 0, std 1."""
    ckpt = load_checkpoint(path, "rm", tok)
    rm = (SurpriseRM if ckpt["config"].get("surprise") else ScalarHeadModel)(model_config(ckpt)).to(device)
    rm.load_state_dict(ckpt["state_dict"])
    with torch.no_grad():
        for reader in (rm.head, getattr(rm, "surprise", None)):   # every term of the reward scales by the gain
            if reader is not None:
                reader.weight.mul_(ckpt["reward_gain"])
                reader.bias.mul_(ckpt["reward_gain"])
        rm.head.bias.add_(ckpt["reward_bias"])
    return rm.eval(), ckpt


def check_block_size(tok, prompts, max_new, *models, flag="max_response_tokens"):
    """Stop with one line unless the longest of these (world) prompts plus max_new sampled tokens fits the
    block of every model; models are (checkpoint path, GPTConfig) pairs."""
    longest = max(len(tok.encode_prompt(p.text)) for p in prompts)
    for path, model_cfg in models:
        if longest + max_new > model_cfg.block_size:
            raise SystemExit(f"error: --{flag}={max_new}: the longest prompt ({longest} tokens) + {max_new} tokens "
                             f"exceed block_size={model_cfg.block_size} of {path}; lower --{flag} to "
                             f"{model_cfg.block_size - longest} or train SFT with --block_size={longest + max_new}")


def warn_if_split_differs(cfg, sft_path, sft_ckpt):
    """An SFT model trained on the same --data file must have held out the same records as this stage
    (train_sft.py and train_rm.py split a file with the same rule): warn if it split with other settings."""
    sft_cfg = sft_ckpt["config"]
    if os.path.basename(sft_cfg.get("data") or "") == os.path.basename(cfg.data) and any(
            sft_cfg.get(k) != getattr(cfg, k) for k in ("eval_frac", "seed", "max_response_chars")):
        print(f"warning: {sft_path} split {sft_cfg['data']} with other --eval_frac/--seed/"
              f"--max_response_chars: the SFT model may have trained on held-out records", file=sys.stderr)


def check_same_sft(rm_path, rm_ckpt, sft_path, sft_ckpt):
    """A reward model is only good for the SFT model it was trained on (it ranked that model's samples,
    and its normalisation is theirs): stop with one line naming both checkpoints if sft_ckpt is another.
    Settings that do not change the weights (where it was saved, the device, threads) are not compared."""
    if "sft_config" not in rm_ckpt:   # an RM checkpoint from before it recorded its SFT model
        return
    ignore = {"out_dir", "device", "threads"}
    theirs, ours = rm_ckpt["sft_config"], sft_ckpt["config"]
    diff = sorted(k for k in set(theirs) | set(ours) if k not in ignore and theirs.get(k) != ours.get(k))
    if diff:
        raise SystemExit(f"error: {rm_path} was trained on another SFT model than {sft_path} "
                         f"({', '.join(f'{k}={theirs.get(k)!r} vs {ours.get(k)!r}' for k in diff[:3])}); "
                         f"train the RM on this one, or pass the SFT checkpoint it was trained on")


def _batches(n, size):
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


@torch.no_grad()
def rm_scores(rm, tok, prompt_texts, token_lists, finished, truncation_penalty, device, dtype="float32",
              batch_size=128):
    """Normalised RM score of each response, read at its final real token; truncated ones get the penalty."""
    out = []
    for s in _batches(len(prompt_texts), batch_size):
        responses, r_mask = pad(token_lists[s], tok.pad_id, device=device)   # (B, Tr) right-padded
        empty = ~r_mask.any(dim=1)
        r_mask[empty, 0] = True   # an empty response is read at a pad token; it is truncated anyway
        tokens, mask, Tp = join_prompt_response([tok.encode_prompt(t) for t in prompt_texts[s]], responses,
                                                r_mask, tok.pad_id)
        with autocast(device, dtype):
            out.append(rm.score(tokens, mask, joined_response_mask(mask, Tp)).float().cpu())
    scores = torch.cat(out)
    return torch.where(torch.tensor(finished), scores, torch.full_like(scores, truncation_penalty))


def _joined_batches(tok, prompt_texts, token_lists, device, batch_size):
    """The responses in batches laid out as the sampler wrote them, [left-padded prompt | right-padded
    response]: yields tokens, mask, Tp and the response mask (B, Tr)."""
    for s in _batches(len(prompt_texts), batch_size):
        responses, r_mask = pad(token_lists[s], tok.pad_id, device=device)   # (B, Tr) right-padded
        tokens, mask, Tp = join_prompt_response([tok.encode_prompt(t) for t in prompt_texts[s]], responses,
                                                r_mask, tok.pad_id)
        yield tokens, mask, Tp, r_mask


@torch.no_grad()
def kl_to_ref(policy, ref, tok, prompt_texts, token_lists, temperature, device, dtype="float32", batch_size=128):
    """Per-response sum_t [log pi(y_t) - log pi_ref(y_t)] on the policy's samples (B,)."""
    out = []
    for tokens, mask, Tp, r_mask in _joined_batches(tok, prompt_texts, token_lists, device, batch_size):
        with autocast(device, dtype):
            lp, _ = response_logprobs(policy, tokens, mask, Tp, temperature)
            ref_lp, _ = response_logprobs(ref, tokens, mask, Tp, temperature)
        out.append(((lp - ref_lp) * r_mask).sum(1).cpu())
    return torch.cat(out)


@torch.no_grad()
def mean_logprob(model, tok, prompt_texts, token_lists, device, dtype="float32", batch_size=128):
    """Per-response mean over its tokens of log pi(y_t | x, y_<t) (B,): how expected the policy finds it."""
    out = []
    for tokens, mask, Tp, r_mask in _joined_batches(tok, prompt_texts, token_lists, device, batch_size):
        with autocast(device, dtype):
            lp, _ = response_logprobs(model, tokens, mask, Tp)
        out.append(((lp * r_mask).sum(1) / r_mask.sum(1).clamp(min=1)).cpu())
    return torch.cat(out)


def describe(prompts, texts, finished):
    """Gold and surface features of each sample: what the policy learned to do, including the document's
    failure modes as yes/no per answer: longer than gold's word budget, formatted, gibberish, sycophantic."""
    rows = []
    for p, t, f in zip(prompts, texts, finished):
        feats = world.features(p, t)
        rows.append({"family": p.family, "gold": world.gold(p, t, f), "finished": f, "n_words": feats["n_words"],
                     "n_format": feats["n_format"],
                     "over_budget": feats["n_words"] > world.word_budget(p),
                     "gibberish": feats["gibberish"],
                     "agrees": feats["agrees"],                                 # claim family only
                     # agrees and is wrong: with a false claim, or with a true one for a false reason
                     "sycophantic": bool(feats["agrees"]) and not feats["correct"]})
    return rows


def summarise(rows, proxy=None, kl=None):
    """Means over samples, overall and per family."""
    def block(rs, idx):
        claim = [r for r in rs if r["agrees"] is not None]
        d = {"n": len(rs), "gold": float(np.mean([r["gold"] for r in rs])),
             "eos_rate": float(np.mean([r["finished"] for r in rs])),
             "length": float(np.mean([r["n_words"] for r in rs])),
             "format": float(np.mean([r["n_format"] for r in rs])),
             "over_budget_rate": float(np.mean([r["over_budget"] for r in rs])),
             "format_rate": float(np.mean([r["n_format"] > 0 for r in rs])),
             "gibberish_rate": float(np.mean([r["gibberish"] for r in rs]))}
        if claim:
            d["agree_rate"] = float(np.mean([bool(r["agrees"]) for r in claim]))
            d["sycophancy_rate"] = float(np.mean([r["sycophantic"] for r in claim]))
        if proxy is not None:
            d["proxy"] = float(proxy[idx].mean())
        if kl is not None:
            d["kl"] = float(kl[idx].mean())
        return d
    out = block(rows, torch.arange(len(rows)))
    out["per_family"] = {}
    for fam in world.FAMILIES:
        idx = [i for i, r in enumerate(rows) if r["family"] == fam]
        if idx:
            out["per_family"][fam] = block([rows[i] for i in idx], torch.tensor(idx))
    return out


def evaluate_policy(policy, ref, rm, tok, prompts, max_new_tokens, temperature, truncation_penalty, generator,
                    device, dtype="float32"):
    """Sample once per prompt and measure proxy, gold, KL and behaviour. Returns (summary, samples)."""
    texts, finished, token_lists = sample_responses(policy, tok, [p.text for p in prompts], max_new_tokens,
                                                    temperature=temperature, generator=generator, device=device,
                                                    dtype=dtype)
    proxy = rm_scores(rm, tok, [p.text for p in prompts], token_lists, finished, truncation_penalty, device, dtype)
    kl = kl_to_ref(policy, ref, tok, [p.text for p in prompts], token_lists, temperature, device, dtype)
    rows = describe(prompts, texts, finished)
    for row, t, px, k in zip(rows, texts, proxy.tolist(), kl.tolist()):
        row.update(text=t, proxy=px, kl=k)
    return summarise(rows, proxy, kl), rows


def gold_win_rate(prompts, texts_a, finished_a, texts_b, finished_b):
    """How often the gold labeler prefers a's sample to b's for the same prompt (ties count half)."""
    return float(np.mean([world.gold_compare(p, a, b, fa, fb)
                          for p, a, fa, b, fb in zip(prompts, texts_a, finished_a, texts_b, finished_b)]))


def best_of_n(policy, rm, tok, prompts, n, max_new_tokens, temperature, truncation_penalty, generator, device,
              dtype="float32"):
    """Draw n samples per prompt and keep the one the RM scores highest (the RM-only baseline)."""
    flat = [p.text for p in prompts for _ in range(n)]
    texts, finished, token_lists = sample_responses(policy, tok, flat, max_new_tokens, temperature=temperature,
                                                    generator=generator, device=device, dtype=dtype)
    scores = rm_scores(rm, tok, flat, token_lists, finished, truncation_penalty, device, dtype).view(len(prompts), n)
    best = scores.argmax(dim=1).tolist()
    pick = [i * n + b for i, b in enumerate(best)]
    return ([texts[i] for i in pick], [finished[i] for i in pick], [token_lists[i] for i in pick],
            scores.max(dim=1).values)


def evaluate_on(policy, ref, rm, tok, prompts, cfg, seed_offset, device):
    """evaluate_policy with a stage's settings (cfg: max_response_tokens, temperature, truncation_penalty,
    dtype, seed) and the sampling stream cfg.seed + seed_offset (nanorm/config.py names the offsets)."""
    gen = torch.Generator(device=device).manual_seed(cfg.seed + seed_offset)
    return evaluate_policy(policy, ref, rm, tok, prompts, cfg.max_response_tokens, cfg.temperature,
                           cfg.truncation_penalty, gen, device, cfg.dtype)


POINT_KEYS = ("proxy", "gold", "kl", "length", "format", "eos_rate", "over_budget_rate", "format_rate",
              "gibberish_rate")


def curve_point(summary):
    """What a training curve keeps of an evaluation: the means above, and the sycophancy rate of its claim
    prompts (None without any)."""
    point = {k: summary[k] for k in POINT_KEYS}
    point["sycophancy"] = summary["per_family"].get("claim", {}).get("sycophancy_rate")
    return point


def validation_point(policy, ref, rm, tok, prompts, cfg, device):
    """One point of a training curve: the policy on the validation prompts, always the same sampling
    stream (SEED_VAL_EVAL), so the SFT model evaluated this way is the curve's iteration-0 point."""
    summary, rows = evaluate_on(policy, ref, rm, tok, prompts, cfg, SEED_VAL_EVAL, device)
    return curve_point(summary), rows


def compare_on_test(policies, ref, rm, tok, prompts, cfg, device, best_of=0):
    """The final comparison: SFT (= ref) and each named policy sample every test prompt once, each from its
    own stream (SEED_TEST[name]); the gold labeler compares each policy's sample with SFT's (ties half).
    best_of=n adds the RM's favourite of n SFT samples as "best_of_n". Returns {name: summary} (each with
    "win_rate_vs_sft") and {name: rows}, SFT first."""
    summaries, rows = {}, {}
    for name, model in {"sft": ref, **policies}.items():
        summaries[name], rows[name] = evaluate_on(model, ref, rm, tok, prompts, cfg, SEED_TEST[name], device)
        if name != "sft":
            summaries[name]["win_rate_vs_sft"] = win_rate(prompts, rows[name], rows["sft"])
    if best_of:
        summaries[f"best_of_{best_of}"] = best_of_n_on_test(ref, rm, tok, prompts, best_of, cfg, rows["sft"], device)
    return summaries, rows


def win_rate(prompts, rows_a, rows_b):
    """gold_win_rate of two policies' evaluation rows (one sample each per prompt)."""
    return gold_win_rate(prompts, [r["text"] for r in rows_a], [r["finished"] for r in rows_a],
                         [r["text"] for r in rows_b], [r["finished"] for r in rows_b])


def best_of_n_on_test(ref, rm, tok, prompts, n, cfg, sft_rows, device):
    """The RM-only baseline on the test prompts: the RM's favourite of n SFT samples (SEED_TEST["best_of_n"]).
    Its KL to SFT is at most log n - (n-1)/n (Stiennon et al. 2020, app. G.3; exact without ties)."""
    gen = torch.Generator(device=device).manual_seed(cfg.seed + SEED_TEST["best_of_n"])
    texts, fin, _, scores = best_of_n(ref, rm, tok, prompts, n, cfg.max_response_tokens, cfg.temperature,
                                      cfg.truncation_penalty, gen, device, cfg.dtype)
    summary = summarise(describe(prompts, texts, fin), scores,
                        torch.full((len(prompts),), float(np.log(n) - (n - 1) / n)))   # KL_bon bound
    summary["win_rate_vs_sft"] = gold_win_rate(prompts, texts, fin, [r["text"] for r in sft_rows],
                                               [r["finished"] for r in sft_rows])
    return summary


# ----------------------------------------------------------------------------------------------------
# Stage reports: what train_sft.py and train_rm.py measure at the end


def evaluate_sft(model, tok, eval_texts, test_prompts, cfg, device):
    """Sample each held-out prompt once: EOS rate, gold (world prompts only: test_prompts=None for a file),
    and variety (the first 50 prompts sampled 4 more times: distinct answers among the 5)."""
    gen = torch.Generator(device=device).manual_seed(cfg.seed + SEED_SFT_EVAL)
    sample = lambda texts: sample_responses(model, tok, texts, cfg.max_response_tokens, temperature=cfg.temperature,
                                            generator=gen, device=device, dtype=cfg.dtype,
                                            max_prompt_tokens=cfg.block_size - cfg.max_response_tokens)
    texts, finished, _ = sample(eval_texts)        # a longer (real) dialogue keeps its last tokens
    few = eval_texts[:50]
    repeats = [sample(few)[0] for _ in range(4)]
    distinct = np.mean([len({texts[i], *(r[i] for r in repeats)}) for i in range(len(few))])
    report = {"n_test_prompts": len(eval_texts), "eos_rate": float(np.mean(finished)),
              "distinct_of_5_samples": float(distinct)}
    if test_prompts is None:   # real data has no gold utility: report what can be measured, and the samples
        golds = [None] * len(texts)
        report.update({"data": cfg.data, "gold": None, "per_family": None})
    else:
        golds = [world.gold(p, t, f) for p, t, f in zip(test_prompts, texts, finished)]
        per_family = {}
        for fam in world.FAMILIES:
            g = [x for p, x in zip(test_prompts, golds) if p.family == fam]
            per_family[fam] = {"n": len(g), "gold_mean": float(np.mean(g)), "gold_std": float(np.std(g))}
        report.update({"gold_mean": float(np.mean(golds)), "gold_std": float(np.std(golds)),
                       "per_family": per_family})
    report["samples"] = [{"prompt": p, "response": t, "finished": f, **({} if g is None else {"gold": round(g, 3)})}
                         for p, t, f, g in list(zip(eval_texts, texts, finished, golds))[:20]]
    return report


def evaluate_rm(r, records, labeler_a=None, labeler_b=None, seed=0):
    """How good is a reward model, without running PPO? r: (M,) its normalised rewards of every response
    of the held-out records (flat, record by record); records: ranked by held-out labeler A.

    Always: pairwise accuracy against A's rankings (ties count half) and the calibration error (ECE) of
    sigma(r_a - r_b), each pair oriented at random. World records (labelers given): the same pairs
    judged by labeler B (agreement, the noise ceiling), the Bayes ceiling mean max(p, 1-p) of A's own
    noise, accuracy against gold, per family, and reward vs length. A file: the longer-wins baseline.
    """
    idx_w, idx_l, group = kwise_pairs([rec.ranking for rec in records])          # (P,) each
    p = torch.tensor(pair_targets(records))                                      # (P,) soft targets: 1 but in files
    decided = p > 0.5                                                            # ties have no right answer
    report = {"n_eval_prompts": len(records), "n_eval_pairs": len(idx_w),
              "accuracy": pairwise_accuracy(r[idx_w][decided], r[idx_l][decided])}
    if not decided.all():
        report["n_eval_ties"] = int((~decided).sum())
    flip = torch.rand(len(idx_w), generator=torch.Generator().manual_seed(seed)) < 0.5
    a, b = torch.where(flip, idx_l, idx_w), torch.where(flip, idx_w, idx_l)      # (P,) random orientation
    # calibration against the labels' own strength: a tie should be predicted 50:50
    report["ece"] = expected_calibration_error(torch.sigmoid(r[a] - r[b]), torch.where(flip, 1 - p, p))
    if labeler_a is None:   # real data: no gold and no second labeler; the baseline is "the longer one wins"
        n_chars = torch.tensor([float(len(t)) for rec in records for t in rec.responses])   # (M,)
        report["length_baseline_accuracy"] = pairwise_accuracy(n_chars[idx_w][decided], n_chars[idx_l][decided])
        report["reward_length_corr"] = float(np.corrcoef(r.numpy(), n_chars.numpy())[0, 1])
        return report

    prompts = [world.Prompt.from_dict(rec.meta["world_prompt"]) for rec in records]
    flat = [(p, t, f) for p, rec in zip(prompts, records) for t, f in zip(rec.responses, rec.meta["finished"])]
    rng_b = random.Random(seed + SEED_LABELER_B)
    pos_b = []                                    # (M,) each response's place in labeler B's ranking
    for p, rec in zip(prompts, records):
        ranking_b = labeler_b.rank(p, rec.responses, rng_b, finished=rec.meta["finished"])
        pos_b += [ranking_b.index(i) for i in range(len(rec.responses))]
    pos_b = torch.tensor(pos_b)
    gold = torch.tensor([world.gold(p, t, f) for p, t, f in flat], dtype=torch.float64)          # (M,)
    feats = [world.features(p, t) for p, t, _ in flat]
    pairs = list(zip(idx_w.tolist(), idx_l.tolist()))
    p_a = np.array([labeler_a.p_prefer(flat[w][0], flat[w][1], flat[l][1], flat[w][2], flat[l][2]) for w, l in pairs])
    p_b = np.array([labeler_b.p_prefer(flat[w][0], flat[w][1], flat[l][1], flat[w][2], flat[l][2]) for w, l in pairs])
    right = ((r[idx_w] > r[idx_l]).double() + 0.5 * (r[idx_w] == r[idx_l]).double()).numpy()   # (P,) 1, 1/2, 0
    judged = (gold[idx_w] != gold[idx_l]).numpy()                      # (P,) gold is not a tie on this pair
    gold_right = ((r[idx_w] > r[idx_l]) == (gold[idx_w] > gold[idx_l])).numpy()
    families = np.array([prompts[g].family for g in group.tolist()])   # (P,)
    lengths = np.array([f["n_words"] for f in feats])                  # (M,)
    correct = np.array([bool(f["correct"]) and done for f, (_, _, done) in zip(feats, flat)])
    rewards = r.double().numpy()
    report.update({
        "bayes_ceiling": bayes_ceiling(torch.tensor(p_a, dtype=torch.float32)),
        "inter_labeler_agreement": float(np.mean(p_a * p_b + (1 - p_a) * (1 - p_b))),   # P(A and B agree)
        "inter_labeler_agreement_sampled": float(np.mean((pos_b[idx_w] < pos_b[idx_l]).numpy())),
        "gold_accuracy": float(np.mean(gold_right[judged])) if judged.any() else 0.0,
        "accuracy_per_family": {str(f): float(np.mean(right[families == f])) for f in sorted(set(families))},
        "reward_length_corr": float(np.corrcoef(rewards, lengths)[0, 1]),
        "reward_length_corr_correct_only": float(np.corrcoef(rewards[correct], lengths[correct])[0, 1]),
    })
    return report
