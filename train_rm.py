"""
Stage 2 of 3: the reward model (RM).

The SFT model's unembedding (d_model -> vocab) is replaced by a scalar head (d_model -> 1) that reads
the hidden state at the response's final token. It is trained on ranked comparisons with the
Bradley-Terry pairwise loss (InstructGPT eq. 1), all C(K,2) pairs of a prompt in one batch:

    loss(phi) = - 1/C(K,2) * E_{(x, y_w, y_l) ~ D} [ log sigma( r_phi(x, y_w) - r_phi(x, y_l) ) ]

In the world, each ranking also brings up to --contrasts "contrast pairs": one of its correct answers
against the same text with one fact changed, judged by the same labeler. Nothing but the fact differs, so
those pairs teach the check itself, which the rankings alone leave to cues that travel with mistakes
(lesson 04). Their loss is added with weight --contrast_weight.

    python train_rm.py                        # world: collect comparisons from SFT samples, train, evaluate
    python train_rm.py --contrasts=0          # the rankings alone
    python train_rm.py --init=random          # same architecture, trained from scratch (no SFT init)
    python train_rm.py --rounds=2             # rank every training prompt twice: twice the comparisons
    python train_rm.py --surprise=true        # the head also reads the trunk's surprise at the response:
                                              # its next-token log-probs (nanorm/reward.py::SurpriseRM)
    python train_rm.py --init_ckpt=out/sft_256/ckpt.pt   # the trunk of a bigger SFT model; out/sft still
                                              # writes the samples (nanorm/experiments/rm_size.py)
    python train_rm.py --data=FILE.jsonl --sft_ckpt=out/sft_hh/ckpt.pt --tokenizer=data/hh.tiktoken   # real data
    torchrun --standalone --nproc_per_node=2 train_rm.py   # data-parallel (nanorm/distributed.py)

From Python: `import train_rm; report = train_rm.main(train_rm.RMConfig(n_prompts=200))`.

Reads  : out/sft/ckpt.pt
Writes : out/rm/comparisons.jsonl (the collected rankings), out/rm/contrasts.jsonl (their contrast pairs),
         out/rm/eval_comparisons.jsonl (held-out),
         out/rm/ckpt.pt (weights + reward normalisation), out/rm/metrics.jsonl, out/rm/eval.json
Lessons: lessons/03-reward-model.md, lessons/04-evaluating-a-reward-model.md
"""

import json
import math
import random
import time
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm

from nanorm import world
from nanorm.checkpoint import OutDir, load_checkpoint, model_config, save_checkpoint, tokenizer_info, write_json
from nanorm.config import (SEED_CONTRASTS, SEED_HELDOUT_RANKINGS, above, at_least, at_most_prompts, autocast,
                           check_system, cli, one_of, require, start, warn_if)
from nanorm.data import encode_example, pack_sequences, sample_responses
from nanorm.distributed import (average_gradients, batch_mean, broadcast_parameters, gather_shards, global_share,
                                own_stream, shard)
from nanorm.evaluate import check_block_size, evaluate_rm, warn_if_split_differs
from nanorm.model import GPT, ScalarHeadModel
from nanorm.prefdata import Comparison, load_split, pair_targets, write_comparisons
from nanorm.report import print_rm_report
from nanorm.reward import SurpriseRM, bradley_terry_loss, kwise_pairs, pairwise_accuracy
from nanorm.tokenizer import DEFAULT_RANKS, load_tokenizer
from nanorm.training import progress, stop_if_not_finite


@dataclass
class RMConfig:
    sft_ckpt: str = "out/sft/ckpt.pt"    # the SFT model: samples responses, and initialises the RM
    out_dir: str = "out/rm"              # checkpoint, comparisons, metrics, eval
    tokenizer: str = DEFAULT_RANKS       # must be the tokenizer the SFT model was trained with
    init: str = "sft"                    # sft: copy the SFT trunk (the document's choice) | random: from scratch
    init_ckpt: str = ""                  # the SFT model whose trunk (and size) the RM takes; empty = --sft_ckpt.
                                         # Another size than the policy's: nanorm/experiments/rm_size.py
    data: str = ""                       # empty: collect comparisons in the world; else a JSONL of comparisons
    n_prompts: int = 0                   # training prompts (world) or records (file) to use; 0 = all
    # data collection (world only)
    k_min: int = 4                       # each prompt gets K ~ U{k_min..k_max} SFT samples (InstructGPT: 4..9)
    k_max: int = 9
    rounds: int = 1                      # rankings per training prompt, each of fresh samples by a freshly
                                         # drawn labeler (more comparisons without more prompts)
    n_labelers: int = 8                  # labelers 0..n-3 label training data; the last two are held out
    temperature: float = 1.0             # SFT sampling temperature for the responses to rank
    contrasts: int = 3                   # per ranking, up to this many of its correct answers are also compared
                                         # with a copy with one fact changed (world.minimal_edit), by the same
                                         # labeler: pairs where only the fact differs (0 = none)
    contrast_weight: float = 1.0         # weight of the contrast pairs' loss, beside the rankings' 1
    surprise: bool = False               # also read the trunk's surprise at the response (nanorm/reward.py::SurpriseRM)
    surprise_lr: float = 1e-2            # learning rate of that reader's two weights and bias (they start at 0)
    ties: str = "half"                   # file data: a tie trains as half a win each way (half) or is skipped (drop)
    # optimisation
    prompts_per_batch: int = 2           # prompts per step; ALL of each prompt's responses and pairs go in
                                         # (and their contrast pairs); 2 gives 4x the steps of 8 at about the
                                         # same cost, and the checks need the steps
    epochs: int = 1                      # passes over the comparisons (InstructGPT: 1, more overfits)
    lr: float = 3e-4                     # AdamW learning rate (cosine decay to lr / 10)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    max_response_tokens: int = 48        # longer responses are cut (file data); matches SFT sampling
    # evaluation
    n_eval_prompts: int = 300            # held-out (validation-split) prompts, ranked by held-out labelers
    eval_frac: float = 0.1               # file data: fraction of records held out
    max_response_chars: int = 1000       # file data: skip responses longer than this (0 = no limit; OASST: 5000)
    eval_interval: int = 100             # steps between held-out evaluations
    # system
    device: str = "auto"
    dtype: str = "float32"
    seed: int = 1337
    threads: int = 0

    def check(self):
        check_system(self)
        one_of(self, "init", ("sft", "random"))
        one_of(self, "ties", ("half", "drop"))
        at_least(self, 2, "k_min")
        at_least(self, self.k_min, "k_max")
        at_least(self, 3, "n_labelers")   # at least one training labeler and the two held-out ones
        at_least(self, 1, "rounds", "prompts_per_batch", "max_response_tokens", "n_eval_prompts", "eval_interval")
        at_least(self, 0, "n_prompts", "epochs", "lr", "weight_decay", "max_response_chars", "contrasts",
                 "contrast_weight", "surprise_lr")
        require(self, "surprise", not (self.surprise and self.init == "random"),
                "reads the SFT model's next-token predictions: it needs --init=sft")
        above(self, 0, "temperature", "grad_clip")
        require(self, "eval_frac", 0 < self.eval_frac < 1, "must be in (0, 1)")
        if not self.data:   # the world's prompts (--data: records, as many as there are)
            at_most_prompts(self, n_prompts="train")
        at_most_prompts(self, n_eval_prompts="val")
        warn_if(self, "epochs", self.epochs == 0, "nothing is trained; the checkpoint is the initial model")
        warn_if(self, "lr", self.lr == 0 < self.epochs, "nothing is trained; the checkpoint is the initial model")


# ----------------------------------------------------------------------------------------------------
# 2. Data collection (the document's "Data collection"): for each prompt the SFT model writes K = 4..9
#    responses and ONE labeler ranks all K of them, giving C(K,2) comparisons (up to 36 for K=9).

def collect(sft, tok, prompts, labeler_for, rng, gen, cfg, max_new, device):
    """Sample K responses per prompt from the SFT policy and have a labeler rank them. Returns the rankings."""
    ks = [rng.randint(cfg.k_min, cfg.k_max) for _ in prompts]
    flat = [p.text for p, k in zip(prompts, ks) for _ in range(k)]   # prompt i repeated K_i times
    # torchrun: each process samples its share of them, from a stream of its own, and all get all the texts
    texts, finished, _ = sample_responses(sft, tok, shard(flat), max_new, temperature=cfg.temperature,
                                          generator=own_stream(gen), device=device, dtype=cfg.dtype)
    texts, finished = gather_shards(texts, len(flat)), gather_shards(finished, len(flat))
    records, at = [], 0
    for p, k in zip(prompts, ks):
        responses, done = texts[at:at + k], finished[at:at + k]
        at += k
        labeler = labeler_for(rng)
        ranking = labeler.rank(p, responses, rng, finished=done)
        records.append(Comparison(prompt=p.text, responses=responses, ranking=ranking, labeler=labeler.id,
                                  meta={"world_prompt": p.to_dict(), "finished": done}))
    return records


def contrast_pairs(records, labelers, per_ranking, rng):
    """For each ranking, up to per_ranking of its correct, finished answers, each against the same text with
    one fact changed (world.minimal_edit), ranked by the ranking's own labeler: records of K = 2 in which
    nothing but the fact differs, so no length or style cue can stand in for checking it.
    Returns one list of contrast records per ranking."""
    by_id = {lab.id: lab for lab in labelers}
    out = []
    for rec in records:
        prompt = world.Prompt.from_dict(rec.meta["world_prompt"])
        correct = [t for t, done in zip(rec.responses, rec.finished)
                   if done and world.features(prompt, t)["correct"]]
        mine = []
        for text in list(dict.fromkeys(correct)) * per_ranking:   # each distinct correct answer in turn
            if len(mine) == per_ranking:
                break
            edited = world.minimal_edit(prompt, text, rng)
            if edited is not None:
                pair = [text, edited]
                ranking = by_id[rec.labeler].rank(prompt, pair, rng)
                mine.append(Comparison(prompt=rec.prompt, responses=pair, ranking=ranking, labeler=rec.labeler,
                                       meta={"world_prompt": rec.meta["world_prompt"], "finished": [True, True],
                                             "contrast": True}))
        out.append(mine)
    return out


def forward_rewards(model, records, tok, max_new, device, dtype):
    """K-wise batching: every response of every prompt is forwarded ONCE. Returns r (M,) and pair indices."""
    seqs = [encode_example(tok, rec.prompt, text, model.cfg.block_size, max_new, done)
            for rec in records for text, done in zip(rec.responses, rec.finished)]
    tokens, mask, response_mask = pack_sequences([p for p, _ in seqs], [r for _, r in seqs], tok.pad_id, device)
    with autocast(device, dtype):
        r = model.score(tokens, mask, response_mask).float()         # (M,) reward at each final token
    idx_w, idx_l, group = kwise_pairs([rec.ranking for rec in records])
    return r, idx_w.to(device), idx_l.to(device), group.to(device)


@torch.no_grad()
def rewards_and_loss(rm, records, *args):
    """The RM's rewards (M,) of every response of `records`, its loss and accuracy on their pairs."""
    rm.eval()
    r = torch.cat([forward_rewards(rm, records[i:i + 32], *args)[0] for i in range(0, len(records), 32)])
    idx_w, idx_l, group = kwise_pairs([rec.ranking for rec in records])
    soft = torch.tensor(pair_targets(records))
    rm.train()
    r = r.cpu()
    decided = soft > 0.5                                               # accuracy: the pairs that are not ties
    return (r, bradley_terry_loss(r, idx_w, idx_l, group, p=soft).item(),
            pairwise_accuracy(r[idx_w][decided], r[idx_l][decided]))


def rm_checkpoint(rm, records, batch_args, config, step, sft_ckpt):
    """The checkpoint train_ppo.py reads: the RM's weights and the gain and bias that give the responses of
    `records` (SFT samples) reward mean 0 and std 1. config: the run's settings (a dict), kept with it."""
    r = rewards_and_loss(rm, records, *batch_args)[0]
    gain = 1.0 / r.std().clamp(min=1e-6).item()
    return {"kind": "rm", "model_config": asdict(rm.cfg), "state_dict": rm.state_dict(), "config": config,
            "step": step, "tokenizer": tokenizer_info(batch_args[0]), "reward_gain": gain,
            "reward_bias": -r.mean().item() * gain, "sft_config": sft_ckpt["config"]}


def main(cfg):
    device = start(cfg, data_parallel=True)   # print the config, pick the device, set threads and seeds
    t_start = time.time()
    out = OutDir(cfg.out_dir)   # every file is written beside its final name until out.commit()

    # 1. The SFT model: it writes the responses that get ranked, and its trunk initialises the RM
    tok = load_tokenizer(cfg.tokenizer)
    sft_ckpt = load_checkpoint(cfg.sft_ckpt, "sft", tok)
    sft = GPT(model_config(sft_ckpt)).to(device)
    sft.load_state_dict(sft_ckpt["state_dict"])
    sft.eval()
    max_new = min(cfg.max_response_tokens, sft_ckpt["config"]["max_response_tokens"])

    # 2. Data: rankings collected in the world (held-out prompts ranked by held-out labeler A), or a file
    labelers = world.make_labelers(cfg.n_labelers, seed=cfg.seed)
    train_labelers, heldout_a, heldout_b = labelers[:-2], labelers[-2], labelers[-1]
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    eval_records = None
    if cfg.data:   # real comparisons, or rankings this script collected earlier (then: no held-out part)
        train_records, eval_records, stats = load_split(cfg.data, cfg.eval_frac, cfg.seed, cfg.max_response_chars,
                                                        ties=cfg.ties)
        print(f"loaded {cfg.data}: {json.dumps(stats)}")
        if eval_records is not None:
            warn_if_split_differs(cfg, cfg.sft_ckpt, sft_ckpt)   # SFT on this file: the same held-out records?
        train_records = train_records[:cfg.n_prompts or None]
        if eval_records is not None and all(r.p_chosen == 0.5 for r in eval_records):
            raise SystemExit(f"error: {cfg.data}: every held-out record is a tie: no accuracy to measure "
                             f"(--ties=drop, or a larger --eval_frac)")
    else:
        t0 = time.time()
        train_prompts = world.make_split("train", cfg.n_prompts or None, seed=cfg.seed)
        check_block_size(tok, train_prompts, max_new, (cfg.sft_ckpt, sft.cfg))
        train_records = collect(sft, tok, [p for p in train_prompts for _ in range(cfg.rounds)],
                                lambda r: r.choice(train_labelers), rng, gen, cfg, max_new, device)
        write_comparisons(out.path("comparisons.jsonl"), train_records)
        print(f"collected {len(train_records)} rankings in {time.time() - t0:.0f}s -> {cfg.out_dir}/comparisons.jsonl")
    contrasts = [[] for _ in train_records]   # contrasts[i]: ranking i's contrast pairs (world rankings only)
    if cfg.contrasts and all("world_prompt" in r.meta for r in train_records):
        contrasts = contrast_pairs(train_records, labelers, cfg.contrasts, random.Random(cfg.seed + SEED_CONTRASTS))
    flat = [c for cs in contrasts for c in cs]
    write_comparisons(out.path("contrasts.jsonl"), flat)
    if flat:
        print(f"contrast pairs: {len(flat)} (the labeler kept the unedited answer in "
              f"{sum(c.ranking[0] == 0 for c in flat) / len(flat):.3f}) -> {cfg.out_dir}/contrasts.jsonl")
    is_world = eval_records is None
    if is_world:
        eval_prompts = world.make_split("val", cfg.n_eval_prompts, seed=cfg.seed)
        check_block_size(tok, eval_prompts, max_new, (cfg.sft_ckpt, sft.cfg))
        eval_records = collect(sft, tok, eval_prompts, lambda r: heldout_a,
                               random.Random(cfg.seed + SEED_HELDOUT_RANKINGS), gen, cfg, max_new, device)
    write_comparisons(out.path("eval_comparisons.jsonl"), eval_records)   # DPO is judged on these
    n_pairs = sum(math.comb(len(r.responses), 2) for r in train_records)
    n_contrasts = sum(map(len, contrasts))
    print(f"training data: {len(train_records)} prompts, {n_pairs} comparisons "
          f"({n_pairs / max(1, len(train_records)):.1f} per prompt) + {n_contrasts} contrast pairs "
          f"(weight {cfg.contrast_weight:g}); held-out: {len(eval_records)} prompts")

    # 3. The reward model: the SFT trunk + a scalar head (nanorm/model.py::ScalarHeadModel)
    trunk = sft   # --init_ckpt: another SFT model's trunk, e.g. a larger one than the policy that wrote the samples
    if cfg.init_ckpt:
        init_ckpt = load_checkpoint(cfg.init_ckpt, "sft", tok)
        trunk = GPT(model_config(init_ckpt))
        trunk.load_state_dict(init_ckpt["state_dict"])
        if trunk.cfg.block_size < sft.cfg.block_size:
            raise SystemExit(f"error: --init_ckpt={cfg.init_ckpt}: block_size {trunk.cfg.block_size} is below the "
                             f"{sft.cfg.block_size} of --sft_ckpt={cfg.sft_ckpt}, whose samples it must score")
    rm_class = SurpriseRM if cfg.surprise else ScalarHeadModel
    rm = (rm_class.from_gpt(trunk) if cfg.init == "sft" else rm_class(trunk.cfg)).to(device)
    broadcast_parameters(rm)   # torchrun: every process starts from rank 0's weights
    del sft.lm_head   # not needed any more; the sampler is done
    print(f"reward model: init={cfg.init}, {sum(p.numel() for p in rm.parameters()) / 1e6:.2f}M parameters")

    # 4. Training: the Bradley-Terry loss over all C(K,2) pairs of each prompt (nanorm/reward.py)
    batch_args = (tok, max_new, device, cfg.dtype)
    max_steps = math.ceil(len(train_records) / cfg.prompts_per_batch) * cfg.epochs
    params = rm.parameters()
    if cfg.surprise:   # the surprise reader's two weights and bias learn at their own rate
        params = [{"params": [p for name, p in rm.named_parameters() if not name.startswith("surprise.")]},
                  {"params": rm.surprise.parameters(), "lr": cfg.surprise_lr}]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, max_steps), eta_min=cfg.lr / 10)
    log = out.metrics()
    step = 0
    rm.train()
    pbar = progress(max_steps, "rm")
    for epoch in range(cfg.epochs):
        order = list(range(len(train_records)))
        random.Random(cfg.seed + epoch).shuffle(order)
        for start_at in range(0, len(order), cfg.prompts_per_batch):
            chosen = shard(order[start_at:start_at + cfg.prompts_per_batch])   # torchrun: this process's share
            batch = [train_records[i] for i in chosen]
            extra = [c for i in chosen for c in contrasts[i]]                   # these rankings' contrast pairs
            # torchrun: each mean below weighted by its share of the whole batch's prompts (else 1)
            share = global_share(sum(len(rec.responses) > 1 for rec in batch))  # prompts with pairs
            extra_share = global_share(len(extra))
            targets = pair_targets(batch)                                       # 1 a pair, but in soft file data
            pair_share = global_share(sum(t > 0.5 for t in targets))            # the accuracy's: pairs not tied
            loss, acc, r = torch.zeros(()), 0.0, torch.zeros(0)          # a process with no prompts in this step
            optimizer.zero_grad(set_to_none=True)
            if batch:
                r, idx_w, idx_l, group = forward_rewards(rm, batch + extra, *batch_args)   # (M,), (P,), (P,), (P,)
                ranked = group < len(batch)                                     # pairs cut from the rankings
                soft = torch.tensor(targets, device=device)                     # (P_ranked,)
                loss = share * bradley_terry_loss(r, idx_w[ranked], idx_l[ranked], group[ranked], p=soft)   # eq. 1
                if extra:
                    loss = loss + cfg.contrast_weight * extra_share * bradley_terry_loss(
                        r, idx_w[~ranked], idx_l[~ranked], group[~ranked])
                decided = soft > 0.5                                            # ties have no right answer
                if decided.any():                                               # (else acc 0, with weight 0)
                    acc = pairwise_accuracy(r[idx_w[ranked]][decided], r[idx_l[ranked]][decided])
                loss.backward()
            average_gradients(rm)                                               # torchrun: the whole batch's
            grad_norm = torch.nn.utils.clip_grad_norm_(rm.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            pbar.update(1)
            loss_value = batch_mean(loss.item(), 1.0)                           # the whole batch's loss
            record = {"step": step, "loss": loss_value, "acc": batch_mean(acc, pair_share)}
            if step % cfg.eval_interval == 0 or step == max_steps:
                _, record["heldout_loss"], record["heldout_acc"] = rewards_and_loss(rm, eval_records, *batch_args)
                tqdm.write(f"step {step:4d} | loss {loss_value:.4f} | held-out loss {record['heldout_loss']:.4f} "
                           f"acc {record['heldout_acc']:.3f}")
            pbar.set_postfix(loss=f"{loss_value:.3f}")
            stop_if_not_finite(f"rm step {step}", f"lower --lr (now {cfg.lr:g})", rewards=r, grad_norm=grad_norm,
                               **record)
            log.log(**record)
    pbar.close()
    train_time = time.time() - t_start

    # 5. Normalise: a gain and bias so the SFT policy's samples get reward mean 0, std 1 (what PPO sees)
    ckpt = rm_checkpoint(rm, train_records, batch_args, asdict(cfg), step, sft_ckpt)
    gain, bias = ckpt["reward_gain"], ckpt["reward_bias"]
    save_checkpoint(out.path("ckpt.pt"), ckpt)
    print(f"normalised reward = {gain:.4f} * r + {bias:+.4f}")

    # 6. Evaluation on held-out prompts: how good is this RM, without running PPO? (the first open question)
    r_eval = rewards_and_loss(rm, eval_records, *batch_args)[0] * gain + bias
    report = {"init": cfg.init, "n_train_prompts": len(train_records), "n_train_pairs": n_pairs,
              "n_contrast_pairs": n_contrasts,
              **evaluate_rm(r_eval, eval_records, *((heldout_a, heldout_b) if is_world else ()), seed=cfg.seed),
              "train_seconds": round(train_time, 1), "total_seconds": round(time.time() - t_start, 1)}
    write_json(out.path("eval.json"), report)
    out.commit()   # the comparisons, ckpt.pt, metrics.jsonl and eval.json, all into place
    print(f"saved {cfg.out_dir}/ckpt.pt")
    print_rm_report(report, is_world, device)
    return report


if __name__ == "__main__":
    cli(main, RMConfig)
