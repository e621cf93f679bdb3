"""
Stage 1 of 3: supervised fine-tuning (SFT).

A small GPT is trained from scratch to imitate demonstrations: the simulated contractors' answers to
the world's prompts. As real contractors' are, the demonstrations are of mixed quality (mostly good,
some verbose, over-formatted, wrong or sycophantic), so the SFT policy samples a variety of answers:
that variety is what the labelers rank in stage 2 and what PPO reshapes in stage 3.

    python train_sft.py                      # default CPU config: about 5 minutes on 2 cores (281 s)
    python train_sft.py --max_iters=50       # any config field can be overridden with --key=value
    torchrun --standalone --nproc_per_node=2 train_sft.py   # data-parallel, same numbers (nanorm/distributed.py)
    python train_sft.py --data=FILE.jsonl --tokenizer=data/hh.tiktoken --block_size=256 \
        --max_response_tokens=96 --out_dir=out/sft_hh     # real preference data: imitate the best responses

From Python: `import train_sft; report = train_sft.main(train_sft.SFTConfig(max_iters=50))`.

Reads  : data/world.tiktoken (the tokenizer; learned once with `python -m nanorm.tokenizer`)
Writes : out/sft/ckpt.pt (weights, model config, settings, tokenizer fingerprint), out/sft/metrics.jsonl,
         out/sft/eval.json (held-out samples: EOS rate, gold score per family; no gold for real data)
Lesson : lessons/02-sft.md
"""

import random
import time
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm

from nanorm import world
from nanorm.checkpoint import OutDir, save_checkpoint, tokenizer_info, write_json
from nanorm.config import (above, at_least, at_most_prompts, autocast, check_system, cli, require, start,
                           warn_if)
from nanorm.data import demonstration_counts, encode_example, pack_sequences
from nanorm.distributed import average_gradients, batch_mean, broadcast_parameters, global_share, shard
from nanorm.evaluate import evaluate_sft
from nanorm.model import GPT, GPTConfig
from nanorm.prefdata import load_split, sft_examples
from nanorm.report import print_sft_report
from nanorm.sft import sft_loss, shift_for_next_token
from nanorm.tokenizer import DEFAULT_RANKS, load_tokenizer
from nanorm.training import lr_at, progress, set_lr, stop_if_not_finite


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
        check_system(self)
        at_least(self, 1, "n_layer", "n_head", "n_embd", "block_size", "demos_per_prompt", "max_response_tokens",
                 "batch_size", "eval_interval", "n_eval_prompts")
        at_least(self, 0, "n_train_prompts", "max_response_chars", "max_iters", "lr", "min_lr", "warmup_iters",
                 "weight_decay")
        above(self, 0, "grad_clip", "temperature")
        require(self, "n_embd", self.n_embd % self.n_head == 0, f"must be divisible by --n_head={self.n_head}")
        require(self, "max_response_tokens", self.max_response_tokens < self.block_size,
                f"must leave room for a prompt in --block_size={self.block_size}")
        require(self, "dropout", 0 <= self.dropout < 1, "must be in [0, 1)")
        require(self, "eval_frac", 0 < self.eval_frac < 1, "must be in (0, 1)")
        require(self, "min_lr", self.min_lr <= self.lr, f"must be at most --lr={self.lr}")
        if not self.data:   # the world's prompts (--data: records, as many as there are)
            at_most_prompts(self, n_train_prompts="train", n_eval_prompts="test")
        warn_if(self, "max_iters", self.max_iters == 0, "nothing is trained; the checkpoint is the initial model")
        warn_if(self, "lr", self.lr == 0 < self.max_iters, "nothing is trained; the checkpoint is the initial model")


# ----------------------------------------------------------------------------------------------------
# 1. Data: the world's training prompts, each with a few demonstrations of mixed quality
#    (--data: real comparisons, each giving its prompt and its best-ranked response)

def make_examples(prompts, tok, rng, cfg):
    """(prompt ids, response ids + EOS) pairs: each prompt's share of demonstrations, drawn with rng."""
    counts = demonstration_counts([p.family for p in prompts], cfg.demos_per_prompt, cfg.balance_families)
    return [encode_example(tok, p.text, world.demonstration(p, rng), cfg.block_size, cfg.max_response_tokens)
            for p, n_demos in zip(prompts, counts) for _ in range(n_demos)]


def get_batch(examples, batch_size, gen, pad_id, device):
    """A random batch of batch_size examples; under torchrun, this process's share of it (every process draws
    the same indices: nanorm/distributed.py)."""
    idx = shard(torch.randint(len(examples), (batch_size,), generator=gen).tolist())
    prompts, responses = zip(*[examples[i] for i in idx])
    tokens, _, response_mask = pack_sequences(prompts, responses, pad_id, device)
    return shift_for_next_token(tokens, response_mask)   # inputs, targets, loss_mask


@torch.no_grad()
def val_loss(model, examples, pad_id, device, dtype):
    """Response-token loss over the whole validation set."""
    model.eval()
    total, count = 0.0, 0
    for first in range(0, len(examples), 256):
        prompts, responses = zip(*examples[first:first + 256])
        tokens, _, response_mask = pack_sequences(prompts, responses, pad_id, device)
        inputs, targets, loss_mask = shift_for_next_token(tokens, response_mask)
        with autocast(device, dtype):
            logits = model(inputs)
        n = loss_mask.sum().item()
        total += sft_loss(logits, targets, loss_mask).item() * n
        count += n
    model.train()
    return total / count


def main(cfg):
    device = start(cfg, data_parallel=True)   # print the config, pick the device, set threads and seeds
    t_start = time.time()

    # 1. Data
    tok = load_tokenizer(cfg.tokenizer)
    rng = random.Random(cfg.seed)
    if cfg.data:   # real preference data: the "demonstration" is each record's best-ranked response
        train_records, val_records, _ = load_split(cfg.data, cfg.eval_frac, cfg.seed, cfg.max_response_chars)
        train_records = train_records[:cfg.n_train_prompts or None]
        fit = lambda records: [encode_example(tok, p, r, cfg.block_size, cfg.max_response_tokens)
                               for p, r in sft_examples(records)]
        train_examples, val_examples = fit(train_records), fit(val_records)
        eval_texts, test_prompts = [c.prompt for c in val_records[:cfg.n_eval_prompts]], None
        n_full = sum(len(p) + len(r) == cfg.block_size for p, r in train_examples)   # their prompts were cut
        n_cut = sum(r[-1] != tok.eos_id for _, r in train_examples)                  # no EOS: the answer goes on
        print(f"loaded {cfg.data}: {len(train_records)} train / {len(val_records)} held-out records; "
              f"{n_full} train examples fill the block (prompt cut on the left), {n_cut} responses cut (no EOS)")
    else:
        train_examples = make_examples(world.make_split("train", cfg.n_train_prompts or None, seed=cfg.seed),
                                       tok, rng, cfg)
        val_examples = make_examples(world.make_split("val", 300, seed=cfg.seed), tok, rng, cfg)
        test_prompts = world.make_split("test", cfg.n_eval_prompts, seed=cfg.seed)   # sampled at the end
        eval_texts = [p.text for p in test_prompts]
    print(f"data: {len(train_examples)} train examples, {sum(len(r) for _, r in train_examples)} response "
          f"tokens; {len(val_examples)} val examples; vocab {tok.vocab_size}")

    # 2. Model: a GPT trained from scratch (there is no pretrained model to start from here)
    model_cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                          n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout)
    model = GPT(model_cfg).to(device)
    broadcast_parameters(model)   # torchrun: every process starts from rank 0's weights
    print(f"model: {model.num_params() / 1e6:.2f}M parameters")
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))

    # 3. Training loop: cross-entropy on response tokens only (nanorm/sft.py::sft_loss)
    out = OutDir(cfg.out_dir)   # every file is written beside its final name until out.commit()
    log = out.metrics()
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    record = {}   # the last step's metrics (empty if max_iters=0)
    pbar = progress(cfg.max_iters, "sft")
    for step in range(cfg.max_iters):
        lr = lr_at(step, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.max_iters)   # warm-up, then cosine
        set_lr(optimizer, lr)
        inputs, targets, loss_mask = get_batch(train_examples, cfg.batch_size, gen, tok.pad_id, device)
        with autocast(device, cfg.dtype):
            logits = model(inputs)                   # right padding only: plain causal attention suffices
        loss = sft_loss(logits, targets, loss_mask)
        share = global_share(loss_mask.sum().item())   # torchrun: this slice's share of the batch's tokens (else 1)
        optimizer.zero_grad(set_to_none=True)
        (loss * share).backward()
        average_gradients(model)                       # torchrun: the whole batch's gradient in every process
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        loss_value = batch_mean(loss.item(), share)     # the whole batch's loss (one process: loss itself)
        pbar.update(1)
        pbar.set_postfix(loss=f"{loss_value:.3f}")
        record = {"step": step, "loss": loss_value, "lr": lr, "grad_norm": grad_norm.item()}
        if (step + 1) % cfg.eval_interval == 0 or step + 1 == cfg.max_iters:
            record["val_loss"] = val_loss(model, val_examples, tok.pad_id, device, cfg.dtype)
            tqdm.write(f"step {step + 1:5d} | train loss {loss_value:.4f} | val loss {record['val_loss']:.4f}")
        stop_if_not_finite(f"sft step {step + 1}", f"lower --lr (now {cfg.lr:g})", **record)   # loss, grad norm, val
        log.log(**record)
    pbar.close()
    train_time = time.time() - t_start

    # 4. Save: the next stages load this by name (out/sft/ckpt.pt)
    ckpt = {"kind": "sft", "model_config": asdict(model_cfg), "state_dict": model.state_dict(),
            "config": asdict(cfg), "step": cfg.max_iters, "tokenizer": tokenizer_info(tok)}
    save_checkpoint(out.path("ckpt.pt"), ckpt)

    # 5. Evaluate on held-out TEST prompts: does it stop (EOS), how good is it (gold), does it vary?
    report = evaluate_sft(model, tok, eval_texts, test_prompts, cfg, device)   # test_prompts None: no gold
    report.update({"val_loss": record.get("val_loss"), "train_seconds": round(train_time, 1)})
    write_json(out.path("eval.json"), report)
    out.commit()   # ckpt.pt, metrics.jsonl and eval.json, all three into place
    print(f"saved {cfg.out_dir}/ckpt.pt after {train_time:.0f}s of training")
    print_sft_report(report, cfg, device, time.time() - t_start)
    return report


if __name__ == "__main__":
    cli(main, SFTConfig)
