"""
Sampling speed: KV-cached vs uncached batched sampling, and how the cached sampler scales with batch size.

    python -m nanorm.bench.generation --threads=1                 # PPO's shape: 64 prompts, 48 new tokens
    python -m nanorm.bench.generation --before=/tmp/model_old.py  # also time the sampler of another model.py

GPT.generate(use_cache=True) feeds one new token per step and attends to the cached keys/values;
use_cache=False re-runs the whole (prompt + response so far) sequence at every step. Both draw the same
tokens from the same generator (tests/test_model.py checks it), so only the time differs.
Every row samples exactly --new_tokens tokens (the EOS id is set to -1, so no row stops early) from a
randomly initialised model of the chosen size, on real prompts of the world (about 12 tokens each).
"""

import importlib.util
import sys
from dataclasses import asdict, dataclass

import torch

from nanorm import world
from nanorm.bench.common import machine_info, model_config, print_table, setup, time_interleaved, write_json
from nanorm.config import autocast, parse_config
from nanorm.model import GPT
from nanorm.tokenizer import load_tokenizer


@dataclass
class GenerationConfig:
    device: str = "auto"               # auto | cpu | cuda | cuda:N | mps
    threads: int = 1                   # torch CPU threads; 0 = torch's default
    dtype: str = "float32"             # float32 | bfloat16 (autocast)
    config: str = "default"            # the model's size: default (CPU) | gpu (nanorm/bench/gpu_config.py)
    batch: int = 64                    # prompts sampled at once for the cached vs uncached timing (PPO's rollout)
    new_tokens: int = 48               # tokens sampled per prompt (no row stops early)
    batch_sizes: str = "1,8,64,256"    # batch sizes of the cached sampler's scaling table (--batch is added)
    repeats: int = 3                   # timed calls per sampler (the median is reported)
    before: str = ""                   # a model.py file whose sampler is timed beside this one's
    out: str = "generation"            # the JSON's name: $OUT/NAME.json or out/bench/NAME.json


def load_model_module(path):
    """Import a model.py from a file (e.g. `git show <commit>:nanorm/model.py > /tmp/model_old.py`)."""
    spec = importlib.util.spec_from_file_location("model_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    flags = parse_config(GenerationConfig, sys.argv[1:] if argv is None else argv)
    device = setup(flags)
    tok = load_tokenizer()
    cfg = model_config(flags.config, tok.vocab_size)
    torch.manual_seed(0)
    model = GPT(cfg).to(device).eval()
    sizes = sorted({int(b) for b in flags.batch_sizes.split(",") if b} | {flags.batch})
    prompts = [tok.encode_prompt(p.text) for p in world.make_split("train", max(sizes), seed=0)]
    N = flags.new_tokens

    def sampler(m, B, use_cache):
        gen = torch.Generator(device=device).manual_seed(0)

        def run():
            with autocast(device, flags.dtype):
                m.generate(prompts[:B], N, -1, tok.pad_id, generator=gen, use_cache=use_cache)
        return run

    B = flags.batch
    fns = {"cached": sampler(model, B, True), "uncached": sampler(model, B, False)}
    if flags.before:
        old = load_model_module(flags.before)
        before = old.GPT(old.GPTConfig(**vars(cfg))).to(device).eval()
        before.load_state_dict(model.state_dict())
        fns["cached, --before model.py"] = sampler(before, B, True)
    t = time_interleaved(fns, device, repeats=flags.repeats)
    rows = [{"sampler": name, "batch": B, "seconds": s, "tokens_per_s": B * N / s, "vs_cached": s / t["cached"]}
            for name, s in t.items()]
    print(f"\nsampling {N} new tokens for {B} prompts ({flags.config} model, {cfg.n_layer} layers, "
          f"d_model {cfg.n_embd}, {flags.dtype}, {device}):")
    print_table(rows, [("sampler", "sampler", "{}"), ("seconds", "s / batch", "{:.3f}"),
                       ("tokens_per_s", "tokens/s", "{:,.0f}"), ("vs_cached", "time / cached", "{:.2f}x")])

    # batch-size scaling of the cached sampler (interleaved too, so the ratios between sizes hold)
    t = time_interleaved({b: sampler(model, b, True) for b in sizes}, device, repeats=flags.repeats)
    scaling = [{"batch": b, "seconds": s, "tokens_per_s": b * N / s,
                "vs_batch_1": (b * N / s) / (sizes[0] * N / t[sizes[0]])} for b, s in t.items()]
    print(f"\ncached sampler, {N} new tokens, by batch size:")
    print_table(scaling, [("batch", "batch", "{}"), ("seconds", "s / batch", "{:.3f}"),
                          ("tokens_per_s", "tokens/s", "{:,.0f}"), ("vs_batch_1", f"vs batch {sizes[0]}", "{:.1f}x")])

    report = {"flags": asdict(flags), "machine": machine_info(device), "model": vars(cfg),
              "mean_prompt_tokens": sum(map(len, prompts[:B])) / B, "new_tokens": N,
              "cached_vs_uncached": rows, "speedup_cached_over_uncached": rows[1]["seconds"] / rows[0]["seconds"],
              "batch_scaling": scaling}
    if flags.before:
        report["speedup_cached_over_before"] = rows[2]["seconds"] / rows[0]["seconds"]
    write_json(flags.out, report)
    return report


if __name__ == "__main__":
    main()
