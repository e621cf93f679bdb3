"""
Stage 1 of 3: supervised fine-tuning (SFT).

A small GPT is trained from scratch to imitate demonstrations: the simulated contractors' answers to
the world's prompts. As real contractors' are, the demonstrations are of mixed quality (mostly good,
some verbose, over-formatted, wrong or sycophantic), so the SFT policy samples a variety of answers:
that variety is what the labelers rank in stage 2 and what PPO reshapes in stage 3.

    python train_sft.py                      # default CPU config: ~3 minutes on 2 cores
    python train_sft.py --max_iters=50       # any config field can be overridden with --key=value
    python train_sft.py --data=FILE.jsonl --tokenizer=data/hh.tiktoken --block_size=256 \
        --max_response_tokens=96 --out_dir=out/sft_hh     # real preference data: imitate the best responses

Reads  : data/world.tiktoken (the tokenizer; learned once with `python -m nanorm.tokenizer`)
Writes : out/sft/ckpt.pt (weights, model config, settings, tokenizer fingerprint), out/sft/metrics.jsonl,
         out/sft/eval.json (held-out samples: EOS rate, gold score per family; no gold for real data)
Lesson : lessons/02-sft.md
"""

import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from nanorm import world
from nanorm.checkpoint import MetricsLog, save_checkpoint, tokenizer_info
from nanorm.config import autocast, setup
from nanorm.data import demonstration_counts, fit_examples, pack_sequences, sample_responses
from nanorm.model import GPT, GPTConfig
from nanorm.prefdata import load_comparisons, sft_examples, split_holdout
from nanorm.sft import sft_loss, shift_for_next_token
from nanorm.tokenizer import DEFAULT_RANKS, load_tokenizer


@dataclass
class SFTConfig:
    out_dir: str = "out/sft"             # where the checkpoint, metrics and eval go
    tokenizer: str = DEFAULT_RANKS       # ranks file, or "gpt2" for tiktoken's GPT-2 ranks (if cached)
    data: str = ""                       # empty: the world's demonstrations; else a JSONL of comparisons
    # model
    n_layer: int = 4                     # transformer blocks
    n_head: int = 4                      # attention heads
    n_embd: int = 128                    # d_model
    block_size: int = 96                 # longest prompt + response, in tokens
    dropout: float = 0.0                 # dropout probability
    # data
    n_train_prompts: int = 0             # 0 = every training prompt of the world (or record of --data)
    demos_per_prompt: int = 8            # demonstrations drawn per training prompt, on average (fewer overfits)
    balance_families: bool = True        # every family gets the same number of demonstrations (arithmetic has
                                         # the fewest prompts but the facts that are hardest to learn)
    max_response_tokens: int = 48        # a response longer than this is cut, both in data and sampling
    eval_frac: float = 0.1               # --data: fraction of records held out (train_rm.py must use the same)
    max_response_chars: int = 1000       # --data: skip responses longer than this (0 = no limit), as train_rm.py
    # optimisation
    batch_size: int = 64                 # sequences per step
    max_iters: int = 700                 # optimizer steps
    lr: float = 2e-3                     # peak learning rate (AdamW)
    min_lr: float = 2e-4                 # cosine decays to this
    warmup_iters: int = 50               # linear warm-up steps
    weight_decay: float = 0.1            # AdamW weight decay on matrices
    grad_clip: float = 1.0               # clip the global gradient norm
    # evaluation
    eval_interval: int = 100             # steps between validation-loss evaluations
    n_eval_prompts: int = 500            # held-out TEST prompts (--data: held-out records) sampled at the end
    temperature: float = 1.0             # sampling temperature of the evaluation samples
    # system
    device: str = "auto"                 # auto | cpu | cuda | mps
    dtype: str = "float32"               # float32 | bfloat16 (autocast)
    seed: int = 1337                     # same seed, same device: same numbers
    threads: int = 0                     # torch CPU threads; 0 = torch's default

    def check(self):
        assert self.n_embd % self.n_head == 0, "n_embd must be divisible by n_head"
        assert self.batch_size > 0 and self.max_iters >= 0 and self.demos_per_prompt > 0
        assert self.max_response_tokens < self.block_size, "max_response_tokens must leave room for a prompt"


cfg, device = setup(SFTConfig, sys.argv[1:])   # parse --key=value flags, print them, pick the device, seed
t_start = time.time()

# ----------------------------------------------------------------------------------------------------
# 1. Data: the world's training prompts, each with a few demonstrations of mixed quality
#    (--data: real comparisons, each giving its prompt and its best-ranked response)

tok = load_tokenizer(cfg.tokenizer)
rng = random.Random(cfg.seed)


def make_examples(prompts):
    """(prompt ids, response ids + EOS) pairs; over-long responses are cut to max_response_tokens."""
    examples = []
    counts = demonstration_counts([p.family for p in prompts], cfg.demos_per_prompt, cfg.balance_families)
    for p, n_demos in zip(prompts, counts):
        for _ in range(n_demos):
            response = tok.encode_response(world.demonstration(p, rng))
            if len(response) > cfg.max_response_tokens:
                response = response[:cfg.max_response_tokens]   # cut: no EOS, as the sampler would do
            examples.append((tok.encode_prompt(p.text), response))
    return examples


if cfg.data:   # real preference data: the "demonstration" is each record's best-ranked response
    records, _ = load_comparisons(cfg.data, max_response_chars=cfg.max_response_chars or None)
    train_records, val_records = split_holdout(records, cfg.eval_frac, seed=cfg.seed)   # as train_rm.py splits
    train_records = train_records[:cfg.n_train_prompts or None]
    # long dialogues keep their last turns: prompt cut on the left, response cut to max_response_tokens
    train_examples = fit_examples(tok, sft_examples(train_records), cfg.block_size, cfg.max_response_tokens)
    val_examples = fit_examples(tok, sft_examples(val_records), cfg.block_size, cfg.max_response_tokens)
    eval_texts = [c.prompt for c in val_records[:cfg.n_eval_prompts]]   # held-out prompts, sampled at the end
    n_full = sum(len(p) + len(r) == cfg.block_size for p, r in train_examples)   # their prompts were cut
    n_cut = sum(r[-1] != tok.eos_id for _, r in train_examples)                  # no EOS: the answer goes on
    print(f"loaded {cfg.data}: {len(train_records)} train / {len(val_records)} held-out records; "
          f"{n_full} train examples fill the block (prompt cut on the left), {n_cut} responses cut (no EOS)")
else:
    train_examples = make_examples(world.make_split("train", cfg.n_train_prompts or None, seed=cfg.seed))
    val_examples = make_examples(world.make_split("val", 300, seed=cfg.seed))
    test_prompts = world.make_split("test", cfg.n_eval_prompts, seed=cfg.seed)   # sampled at the end
    eval_texts = [p.text for p in test_prompts]
longest = max(len(p) + len(r) for p, r in train_examples + val_examples)
assert longest <= cfg.block_size, f"an example has {longest} tokens > block_size={cfg.block_size}"
n_resp_tokens = sum(len(r) for _, r in train_examples)
print(f"data: {len(train_examples)} train examples, {n_resp_tokens} response tokens; "
      f"{len(val_examples)} val examples; vocab {tok.vocab_size}")


def get_batch(examples, batch_size, gen):
    idx = torch.randint(len(examples), (batch_size,), generator=gen).tolist()
    prompts, responses = zip(*[examples[i] for i in idx])
    tokens, _, response_mask = pack_sequences(prompts, responses, tok.pad_id, device)
    return shift_for_next_token(tokens, response_mask)   # inputs, targets, loss_mask


# ----------------------------------------------------------------------------------------------------
# 2. Model: a GPT trained from scratch (there is no pretrained model to start from here)

model_cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                      n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout)
model = GPT(model_cfg).to(device)
print(f"model: {model.num_params() / 1e6:.2f}M parameters")
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


def lr_at(step):
    """Linear warm-up, then cosine decay from lr to min_lr."""
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / cfg.warmup_iters
    progress = (step - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + np.cos(np.pi * min(1.0, progress)))


@torch.no_grad()
def val_loss():
    """Response-token loss over the whole validation set."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(val_examples), 256):
        prompts, responses = zip(*val_examples[start:start + 256])
        tokens, _, response_mask = pack_sequences(prompts, responses, tok.pad_id, device)
        inputs, targets, loss_mask = shift_for_next_token(tokens, response_mask)
        with autocast(device, cfg.dtype):
            logits = model(inputs)
        n = loss_mask.sum().item()
        total += sft_loss(logits, targets, loss_mask).item() * n
        count += n
    model.train()
    return total / count


# ----------------------------------------------------------------------------------------------------
# 3. Training loop: cross-entropy on response tokens only (nanorm/sft.py::sft_loss)

os.makedirs(cfg.out_dir, exist_ok=True)
log = MetricsLog(os.path.join(cfg.out_dir, "metrics.jsonl"))
gen = torch.Generator().manual_seed(cfg.seed)
model.train()
record = {}   # the last step's metrics (empty if max_iters=0)
pbar = tqdm(range(cfg.max_iters), desc="sft", dynamic_ncols=True)
for step in pbar:
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step)
    inputs, targets, loss_mask = get_batch(train_examples, cfg.batch_size, gen)
    with autocast(device, cfg.dtype):
        logits = model(inputs)                   # right padding only: plain causal attention suffices
    loss = sft_loss(logits, targets, loss_mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    pbar.set_postfix(loss=f"{loss.item():.3f}")
    record = {"step": step, "loss": loss.item(), "lr": lr_at(step), "grad_norm": grad_norm.item()}
    if (step + 1) % cfg.eval_interval == 0 or step + 1 == cfg.max_iters:
        record["val_loss"] = val_loss()
        tqdm.write(f"step {step + 1:5d} | train loss {loss.item():.4f} | val loss {record['val_loss']:.4f}")
    log.log(**record)
train_time = time.time() - t_start

# ----------------------------------------------------------------------------------------------------
# 4. Save: the next stages load this by name (out/sft/ckpt.pt)

ckpt = {"kind": "sft", "model_config": asdict(model_cfg), "state_dict": model.state_dict(),
        "config": asdict(cfg), "step": cfg.max_iters, "tokenizer": tokenizer_info(tok)}
save_checkpoint(os.path.join(cfg.out_dir, "ckpt.pt"), ckpt)
print(f"saved {cfg.out_dir}/ckpt.pt after {train_time:.0f}s")

# ----------------------------------------------------------------------------------------------------
# 5. Evaluate on held-out TEST prompts: does it stop (EOS), how good is it (gold), does it vary?

gen_eval = torch.Generator(device=device).manual_seed(cfg.seed + 1)
max_prompt = cfg.block_size - cfg.max_response_tokens   # a longer (real) dialogue keeps its last tokens
texts, finished, _ = sample_responses(model, tok, eval_texts, cfg.max_response_tokens, temperature=cfg.temperature,
                                      generator=gen_eval, device=device, dtype=cfg.dtype, max_prompt_tokens=max_prompt)
# variety: sample each of the first 50 prompts 4 more times and count distinct answers
few = eval_texts[:50]
repeats = [sample_responses(model, tok, few, cfg.max_response_tokens, temperature=cfg.temperature, generator=gen_eval,
                            device=device, dtype=cfg.dtype, max_prompt_tokens=max_prompt)[0] for _ in range(4)]
distinct = np.mean([len({texts[i], *(r[i] for r in repeats)}) for i in range(len(few))])
report = {"n_test_prompts": len(eval_texts), "eos_rate": float(np.mean(finished)),
          "distinct_of_5_samples": float(distinct), "val_loss": record.get("val_loss"),
          "train_seconds": round(train_time, 1)}
if cfg.data:   # real data has no gold utility: report what can be measured (EOS, variety) and the samples
    golds = [None] * len(texts)
    report.update({"data": cfg.data, "gold": None, "per_family": None})
else:
    golds = [world.gold(p, t, f) for p, t, f in zip(test_prompts, texts, finished)]
    per_family = {}
    for fam in world.FAMILIES:
        g = [x for p, x in zip(test_prompts, golds) if p.family == fam]
        per_family[fam] = {"n": len(g), "gold_mean": float(np.mean(g)), "gold_std": float(np.std(g))}
    report.update({"gold_mean": float(np.mean(golds)), "gold_std": float(np.std(golds)), "per_family": per_family})
report["samples"] = [{"prompt": p, "response": t, "finished": f, **({} if g is None else {"gold": round(g, 3)})}
                     for p, t, f, g in list(zip(eval_texts, texts, finished, golds))[:20]]
with open(os.path.join(cfg.out_dir, "eval.json"), "w") as f:
    json.dump(report, f, indent=1)

print("\nsample responses (held-out test prompts):")
for s in report["samples"][:8]:
    prompt = s["prompt"] if len(s["prompt"]) <= 100 and "\n" not in s["prompt"] else repr("..." + s["prompt"][-97:])
    score = f"gold {s['gold']:+.2f} " if "gold" in s else ""   # real data: no gold column
    print(f"  {score}{'' if s['finished'] else '[TRUNCATED] '}| {prompt}  ->  {s['response']!r}")
print(f"\nEOS within {cfg.max_response_tokens} tokens: {report['eos_rate']:.1%} of {len(eval_texts)} test prompts")
if cfg.data:
    print(f"gold score: none ({cfg.data} is real data: no gold utility, so no gold or per-family scores)")
else:
    print(f"gold score: mean {report['gold_mean']:+.3f}, std {report['gold_std']:.3f}")
    for fam, s in per_family.items():
        print(f"  {fam:10s} n={s['n']:4d}  gold {s['gold_mean']:+.3f} ± {s['gold_std']:.3f}")
print(f"distinct responses among 5 samples of the same prompt: {distinct:.2f} (mean over {len(few)} prompts)")
print(f"total time {time.time() - t_start:.0f}s")
if device.type == "cuda": print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
