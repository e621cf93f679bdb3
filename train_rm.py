"""
Stage 2 of 3: the reward model (RM).

The SFT model's unembedding (d_model -> vocab) is replaced by a scalar head (d_model -> 1) that reads
the hidden state at the response's final token. It is trained on ranked comparisons with the
Bradley-Terry pairwise loss (InstructGPT eq. 1), all C(K,2) pairs of a prompt in one batch:

    loss(phi) = - 1/C(K,2) * E_{(x, y_w, y_l) ~ D} [ log sigma( r_phi(x, y_w) - r_phi(x, y_l) ) ]

    python train_rm.py                        # world: collect comparisons from SFT samples, train, evaluate
    python train_rm.py --init=random          # same architecture, trained from scratch (no SFT init)
    python train_rm.py --rounds=2             # rank every training prompt twice: twice the comparisons
    python train_rm.py --data=FILE.jsonl --sft_ckpt=out/sft_hh/ckpt.pt --tokenizer=data/hh.tiktoken   # real data

Reads  : out/sft/ckpt.pt
Writes : out/rm/comparisons.jsonl (the collected rankings), out/rm/eval_comparisons.jsonl (held-out),
         out/rm/ckpt.pt (weights + reward normalisation), out/rm/metrics.jsonl, out/rm/eval.json
Lessons: lessons/03-reward-model.md, lessons/04-evaluating-a-reward-model.md
"""

import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from nanorm import world
from nanorm.checkpoint import MetricsLog, load_checkpoint, model_config, save_checkpoint, tokenizer_info
from nanorm.config import autocast, setup
from nanorm.data import pack_sequences, sample_responses
from nanorm.model import GPT, ScalarHeadModel
from nanorm.prefdata import Comparison, load_comparisons, split_holdout, write_comparisons
from nanorm.reward import (bayes_ceiling, bradley_terry_loss, expected_calibration_error, kwise_pairs,
                           pairwise_accuracy)
from nanorm.tokenizer import DEFAULT_RANKS, load_tokenizer


@dataclass
class RMConfig:
    sft_ckpt: str = "out/sft/ckpt.pt"    # the SFT model: samples responses, and initialises the RM
    out_dir: str = "out/rm"              # checkpoint, comparisons, metrics, eval
    tokenizer: str = DEFAULT_RANKS       # must be the tokenizer the SFT model was trained with
    init: str = "sft"                    # sft: copy the SFT trunk (the document's choice) | random: from scratch
    data: str = ""                       # empty: collect comparisons in the world; else a JSONL of comparisons
    n_prompts: int = 0                   # training prompts (world) or records (file) to use; 0 = all
    # data collection (world only)
    k_min: int = 4                       # each prompt gets K ~ U{k_min..k_max} SFT samples (InstructGPT: 4..9)
    k_max: int = 9
    rounds: int = 1                      # rankings per training prompt, each of fresh samples by a freshly
                                         # drawn labeler (more comparisons without more prompts)
    n_labelers: int = 8                  # labelers 0..n-3 label training data; the last two are held out
    temperature: float = 1.0             # SFT sampling temperature for the responses to rank
    # optimisation
    prompts_per_batch: int = 8           # prompts per step; ALL of each prompt's responses and pairs go in
    epochs: int = 1                      # passes over the comparisons (InstructGPT: 1, more overfits)
    lr: float = 3e-4                     # AdamW learning rate (cosine decay to lr / 10)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    max_response_tokens: int = 48        # longer responses are cut (file data); matches SFT sampling
    # evaluation
    n_eval_prompts: int = 300            # held-out (validation-split) prompts, ranked by held-out labelers
    eval_frac: float = 0.1               # file data: fraction of records held out
    max_response_chars: int = 1000       # file data: skip responses longer than this (0 = no limit; OASST: 5000)
    eval_interval: int = 50              # steps between held-out evaluations
    # system
    device: str = "auto"
    dtype: str = "float32"
    seed: int = 1337
    threads: int = 0

    def check(self):
        assert self.init in ("sft", "random"), "--init must be sft or random"
        assert 2 <= self.k_min <= self.k_max, "need 2 <= k_min <= k_max"
        assert self.n_labelers >= 3, "need at least one training labeler and two held-out ones"
        assert self.rounds >= 1, "--rounds must be at least 1"


cfg, device = setup(RMConfig, sys.argv[1:])   # parse --key=value flags, print them, pick the device, seed
t_start = time.time()
os.makedirs(cfg.out_dir, exist_ok=True)

# ----------------------------------------------------------------------------------------------------
# 1. The SFT model: it writes the responses that get ranked, and its trunk initialises the RM

tok = load_tokenizer(cfg.tokenizer)
sft_ckpt = load_checkpoint(cfg.sft_ckpt, "sft", tok)
sft = GPT(model_config(sft_ckpt)).to(device)
sft.load_state_dict(sft_ckpt["state_dict"])
sft.eval()
max_new = min(cfg.max_response_tokens, sft_ckpt["config"]["max_response_tokens"])

# ----------------------------------------------------------------------------------------------------
# 2. Data collection (the document's "Data collection"): for each prompt the SFT model writes K = 4..9
#    responses and ONE labeler ranks all K of them, giving C(K,2) comparisons (up to 36 for K=9).

labelers = world.make_labelers(cfg.n_labelers, seed=cfg.seed)
train_labelers, heldout_a, heldout_b = labelers[:-2], labelers[-2], labelers[-1]
gen = torch.Generator(device=device).manual_seed(cfg.seed)


def collect(prompts, labeler_for, rng):
    """Sample K responses per prompt from the SFT policy and have a labeler rank them."""
    ks = [rng.randint(cfg.k_min, cfg.k_max) for _ in prompts]
    flat = [p.text for p, k in zip(prompts, ks) for _ in range(k)]   # prompt i repeated K_i times
    texts, finished, _ = sample_responses(sft, tok, flat, max_new, temperature=cfg.temperature, generator=gen,
                                          device=device, dtype=cfg.dtype)
    records, at = [], 0
    for p, k in zip(prompts, ks):
        responses, done = texts[at:at + k], finished[at:at + k]
        at += k
        labeler = labeler_for(rng)
        ranking = labeler.rank(p, responses, rng, finished=done)
        records.append(Comparison(prompt=p.text, responses=responses, ranking=ranking, labeler=labeler.id,
                                  meta={"world_prompt": p.to_dict(), "finished": done}))
    return records


rng = random.Random(cfg.seed)
if cfg.data:   # real (or previously collected) comparisons from a file
    records, stats = load_comparisons(cfg.data, max_response_chars=cfg.max_response_chars or None)
    print(f"loaded {cfg.data}: {json.dumps(stats)}")
    is_world = all("world_prompt" in r.meta for r in records)
    if is_world:   # a file this script collected: evaluate on freshly ranked validation prompts as usual
        train_records = records
    else:
        train_records, eval_records = split_holdout(records, cfg.eval_frac, seed=cfg.seed)
        if not train_records or not eval_records:
            raise SystemExit(f"error: {cfg.data}: {len(records)} usable comparisons, too few to hold some out")
        # an SFT model trained on this same file must have held out the same records (train_sft.py --data)
        sft_cfg = sft_ckpt["config"]
        if os.path.basename(sft_cfg.get("data") or "") == os.path.basename(cfg.data) and any(
                sft_cfg.get(k) != getattr(cfg, k) for k in ("eval_frac", "seed", "max_response_chars")):
            print(f"warning: {cfg.sft_ckpt} split {sft_cfg['data']} with other --eval_frac/--seed/"
                  f"--max_response_chars: the SFT model may have trained on held-out records", file=sys.stderr)
    if cfg.n_prompts:
        train_records = train_records[:cfg.n_prompts]
else:
    is_world = True
    t0 = time.time()
    train_prompts = world.make_split("train", cfg.n_prompts or None, seed=cfg.seed)
    train_records = collect([p for p in train_prompts for _ in range(cfg.rounds)],
                            lambda r: r.choice(train_labelers), rng)
    write_comparisons(os.path.join(cfg.out_dir, "comparisons.jsonl"), train_records)
    print(f"collected {len(train_records)} rankings in {time.time() - t0:.0f}s -> {cfg.out_dir}/comparisons.jsonl")
if is_world:
    # held-out: validation prompts, ranked by labeler A (the labels) and labeler B (for agreement)
    eval_prompts = world.make_split("val", cfg.n_eval_prompts, seed=cfg.seed)
    eval_records = collect(eval_prompts, lambda r: heldout_a, random.Random(cfg.seed + 1))
write_comparisons(os.path.join(cfg.out_dir, "eval_comparisons.jsonl"), eval_records)   # DPO is judged on these too
n_pairs = sum(math.comb(len(r.responses), 2) for r in train_records)
print(f"training data: {len(train_records)} prompts, {n_pairs} comparisons "
      f"({n_pairs / max(1, len(train_records)):.1f} per prompt); held-out: {len(eval_records)} prompts")


def encode(record):
    """Token ids of [prompt][response, EOS] for each of the record's responses (prompt cut on the left)."""
    prompt = tok.encode_prompt(record.prompt)
    out = []
    for text in record.responses:
        response = tok.encode_response(text)[:max_new]
        room = sft.cfg.block_size - len(response)
        out.append((prompt[-room:], response))
    return out


def forward_rewards(model, records):
    """K-wise batching: every response of every prompt is forwarded ONCE. Returns r (M,) and pair indices."""
    seqs = [s for rec in records for s in encode(rec)]
    tokens, mask, _ = pack_sequences([p for p, _ in seqs], [r for _, r in seqs], tok.pad_id, device)
    with autocast(device, cfg.dtype):
        r = model.score(tokens, mask).float()                        # (M,) reward at each final token
    idx_w, idx_l, group = kwise_pairs([rec.ranking for rec in records])
    return r, idx_w.to(device), idx_l.to(device), group.to(device)


# ----------------------------------------------------------------------------------------------------
# 3. The reward model: the SFT trunk + a scalar head (nanorm/model.py::ScalarHeadModel)

if cfg.init == "sft":
    rm = ScalarHeadModel.from_gpt(sft).to(device)
else:
    rm = ScalarHeadModel(sft.cfg).to(device)
del sft.lm_head   # not needed any more; the sampler is done
print(f"reward model: init={cfg.init}, {sum(p.numel() for p in rm.parameters()) / 1e6:.2f}M parameters")

# ----------------------------------------------------------------------------------------------------
# 4. Training: the Bradley-Terry loss over all C(K,2) pairs of each prompt (nanorm/reward.py)

steps_per_epoch = math.ceil(len(train_records) / cfg.prompts_per_batch)
max_steps = steps_per_epoch * cfg.epochs
optimizer = torch.optim.AdamW(rm.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, max_steps), eta_min=cfg.lr / 10)
log = MetricsLog(os.path.join(cfg.out_dir, "metrics.jsonl"))


@torch.no_grad()
def heldout_loss_acc(records):
    rm.eval()
    losses, accs = [], []
    for start in range(0, len(records), 32):
        batch = records[start:start + 32]
        r, idx_w, idx_l, group = forward_rewards(rm, batch)
        losses.append(bradley_terry_loss(r, idx_w, idx_l, group).item() * len(batch))
        accs.append(pairwise_accuracy(r[idx_w], r[idx_l]) * len(idx_w))
    rm.train()
    n_pairs = sum(math.comb(len(r.responses), 2) for r in records)
    return sum(losses) / len(records), sum(accs) / n_pairs


step = 0
rm.train()
pbar = tqdm(total=max_steps, desc="rm", dynamic_ncols=True)
for epoch in range(cfg.epochs):
    order = list(range(len(train_records)))
    random.Random(cfg.seed + epoch).shuffle(order)
    for start in range(0, len(order), cfg.prompts_per_batch):
        batch = [train_records[i] for i in order[start:start + cfg.prompts_per_batch]]
        r, idx_w, idx_l, group = forward_rewards(rm, batch)         # (M,), (P,), (P,), (P,)
        loss = bradley_terry_loss(r, idx_w, idx_l, group)           # InstructGPT eq. 1
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rm.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        step += 1
        pbar.update(1)
        record = {"step": step, "loss": loss.item(), "acc": pairwise_accuracy(r[idx_w], r[idx_l])}
        if step % cfg.eval_interval == 0 or step == max_steps:
            record["heldout_loss"], record["heldout_acc"] = heldout_loss_acc(eval_records)
            tqdm.write(f"step {step:4d} | loss {loss.item():.4f} | held-out loss {record['heldout_loss']:.4f} "
                       f"acc {record['heldout_acc']:.3f}")
        pbar.set_postfix(loss=f"{loss.item():.3f}")
        log.log(**record)
pbar.close()
train_time = time.time() - t_start

# ----------------------------------------------------------------------------------------------------
# 5. Normalise: a gain and bias so the SFT policy's samples get reward mean 0, std 1 (what PPO sees)


@torch.no_grad()
def rewards_of(records):
    rm.eval()
    return torch.cat([forward_rewards(rm, records[i:i + 32])[0] for i in range(0, len(records), 32)]).cpu()


r_train = rewards_of(train_records)
gain = 1.0 / r_train.std().clamp(min=1e-6).item()
bias = -r_train.mean().item() * gain
ckpt = {"kind": "rm", "model_config": asdict(rm.cfg), "state_dict": rm.state_dict(), "config": asdict(cfg),
        "step": step, "tokenizer": tokenizer_info(tok), "reward_gain": gain, "reward_bias": bias,
        "sft_config": sft_ckpt["config"]}
save_checkpoint(os.path.join(cfg.out_dir, "ckpt.pt"), ckpt)
print(f"saved {cfg.out_dir}/ckpt.pt (normalised reward = {gain:.4f} * r + {bias:+.4f})")

# ----------------------------------------------------------------------------------------------------
# 6. Evaluation on held-out prompts: how good is this RM, without running PPO? (the first open question)

r_eval = rewards_of(eval_records) * gain + bias
idx_w, idx_l, group = kwise_pairs([rec.ranking for rec in eval_records])
report = {"init": cfg.init, "n_train_prompts": len(train_records), "n_train_pairs": n_pairs,
          "n_eval_prompts": len(eval_records), "n_eval_pairs": len(idx_w),
          "accuracy": pairwise_accuracy(r_eval[idx_w], r_eval[idx_l])}
# calibration: orient each pair at random; p = sigma(r_a - r_b) should match how often a won
flip = torch.rand(len(idx_w), generator=torch.Generator().manual_seed(cfg.seed)) < 0.5
a, b = torch.where(flip, idx_l, idx_w), torch.where(flip, idx_w, idx_l)
report["ece"] = expected_calibration_error(torch.sigmoid(r_eval[a] - r_eval[b]), (~flip).float())

if is_world:
    p_a, agree_expected, agree_sampled, gold_right, gold_n, fam_acc = [], [], [], 0.0, 0, {}
    lengths, correct, rewards_flat, at = [], [], [], 0
    rng_b = random.Random(cfg.seed + 2)
    for rec in eval_records:
        prompt = world.Prompt.from_dict(rec.meta["world_prompt"])
        done = rec.meta["finished"]
        ranking_b = heldout_b.rank(prompt, rec.responses, rng_b, finished=done)
        pos_b = {resp: i for i, resp in enumerate(ranking_b)}
        golds = [world.gold(prompt, t, f) for t, f in zip(rec.responses, done)]
        K = len(rec.responses)
        for w, l in [(rec.ranking[i], rec.ranking[j]) for i in range(K) for j in range(i + 1, K)]:
            pa = heldout_a.p_prefer(prompt, rec.responses[w], rec.responses[l], done[w], done[l])
            pb = heldout_b.p_prefer(prompt, rec.responses[w], rec.responses[l], done[w], done[l])
            p_a.append(pa)
            agree_expected.append(pa * pb + (1 - pa) * (1 - pb))
            agree_sampled.append(float(pos_b[w] < pos_b[l]))
            rw, rl = r_eval[at + w].item(), r_eval[at + l].item()
            fam_acc.setdefault(prompt.family, []).append(float(rw > rl) + 0.5 * float(rw == rl))
            if golds[w] != golds[l]:
                gold_n += 1
                gold_right += float((rw > rl) == (golds[w] > golds[l]))
        for i, t in enumerate(rec.responses):
            feats = world.features(prompt, t)
            lengths.append(feats["n_words"])
            correct.append(bool(feats["correct"]) and done[i])
            rewards_flat.append(r_eval[at + i].item())
        at += K
    lengths, correct, rewards_flat = map(np.array, (lengths, correct, rewards_flat))
    report.update({
        "bayes_ceiling": bayes_ceiling(torch.tensor(p_a)),
        "inter_labeler_agreement": float(np.mean(agree_expected)),
        "inter_labeler_agreement_sampled": float(np.mean(agree_sampled)),
        "gold_accuracy": gold_right / max(1, gold_n),
        "accuracy_per_family": {f: float(np.mean(v)) for f, v in sorted(fam_acc.items())},
        "reward_length_corr": float(np.corrcoef(rewards_flat, lengths)[0, 1]),
        "reward_length_corr_correct_only": float(np.corrcoef(rewards_flat[correct], lengths[correct])[0, 1]),
    })
else:   # real data: no gold and no second labeler; the baseline to beat is "the longer response wins"
    n_chars = torch.tensor([float(len(t)) for rec in eval_records for t in rec.responses])   # (M,) characters
    report["length_baseline_accuracy"] = pairwise_accuracy(n_chars[idx_w], n_chars[idx_l])   # ties count half
    report["reward_length_corr"] = float(np.corrcoef(r_eval.numpy(), n_chars.numpy())[0, 1])
report["train_seconds"] = round(train_time, 1)
report["total_seconds"] = round(time.time() - t_start, 1)
with open(os.path.join(cfg.out_dir, "eval.json"), "w") as f:
    json.dump(report, f, indent=1)

print(f"\nheld-out evaluation ({report['n_eval_prompts']} prompts, {report['n_eval_pairs']} pairs):")
print(f"  pairwise accuracy vs held-out labeler   {report['accuracy']:.3f}")
if is_world:
    print(f"  inter-labeler agreement (same pairs)    {report['inter_labeler_agreement']:.3f} "
          f"(sampled: {report['inter_labeler_agreement_sampled']:.3f})")
    print(f"  Bayes ceiling  mean max(p, 1-p)         {report['bayes_ceiling']:.3f}")
    print(f"  accuracy vs gold preferences            {report['gold_accuracy']:.3f}")
    for fam, acc in report["accuracy_per_family"].items():
        print(f"    {fam:10s} {acc:.3f}")
    print(f"  corr(reward, length in words)           {report['reward_length_corr']:+.3f} "
          f"(correct answers only: {report['reward_length_corr_correct_only']:+.3f})")
else:
    print(f"  baseline: the longer response wins      {report['length_baseline_accuracy']:.3f} (chance: 0.500)")
    print(f"  corr(reward, length in characters)      {report['reward_length_corr']:+.3f}")
    print(f"  (real data: no gold, no second labeler, no Bayes ceiling: the labels are the file's)")
print(f"  calibration error (ECE)                 {report['ece']:.3f}")
print(f"total time {report['total_seconds']:.0f}s")
if device.type == "cuda": print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
