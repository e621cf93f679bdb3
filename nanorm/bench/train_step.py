"""
An SFT training step's achieved FLOP/s against this machine's matmul peak, and what bf16 does to it.

The step is forward + backward + AdamW, the peak a matmul at the same dtype; both the default model and
the GPU configuration's model are measured, and bf16 autocast is compared with float32 in speed and loss.

    python -m nanorm.bench.train_step --threads=1            # CPU: float32 and bfloat16
    python -m nanorm.bench.train_step --device=cuda --steps=30

FLOPs of a step (B sequences of T tokens), the usual count (Kaplan et al. 2020, app. of Chinchilla):

    forward  = 2 * N_matmul * B * T              every weight of a Linear layer: one multiply-add per token
             + 4 * n_layer * B * T^2 * d_model   q k^T and att @ v, over the full T x T square
    step     = 3 * forward                       the backward pass costs twice the forward

N_matmul counts the weights of the Linear layers (qkv, attention and MLP projections, lm_head); the
embeddings are lookups and the biases and LayerNorms are too small to count. The script checks this
formula against torch.utils.flop_counter.FlopCounterMode on the first batch (it counts every matmul and
attention call that actually runs) and reports both. AdamW's elementwise work is not counted.

Peak: one 2048 x 2048 @ 2048 x 2048 matmul (2 * 2048^3 FLOPs) at the same dtype, timed in the same run.
Both dtypes train identical copies of the model on the same batches, step by step in turns, so the loss
columns compare bf16 autocast with float32 on equal terms.
"""

import copy
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from nanorm.bench.common import (machine_info, matmul_peak, model_config, print_table, setup, sft_examples, sync,
                                 write_json)
from nanorm.config import autocast, parse_config
from nanorm.data import pack_sequences
from nanorm.model import GPT
from nanorm.sft import sft_loss, shift_for_next_token
from nanorm.tokenizer import load_tokenizer


@dataclass
class TrainStepConfig:
    device: str = "auto"               # auto | cpu | cuda | cuda:N | mps
    threads: int = 1                   # torch CPU threads; 0 = torch's default
    configs: str = "default,gpu"       # model sizes to time: default (CPU) and/or gpu (nanorm/bench/gpu_config.py)
    dtypes: str = "float32,bfloat16"   # dtypes to time, in turns; the first is the reference of the ratios
    batch: int = 64                    # sequences per step (the default model, and the gpu model on CPU)
    gpu_batch: int = 256               # sequences per step of the gpu model on an accelerator
    steps: int = 20                    # timed steps (the gpu model on CPU takes 3)
    gpu_steps: int = 0                 # timed steps of every config, if > 0 (overrides --steps)
    warmup: int = 2                    # untimed steps first
    peak_n: int = 2048                 # size n of the n x n @ n x n matmul that measures the peak
    data_prompts: int = 1000           # training prompts of the SFT examples the batches are drawn from
    out: str = "train_step"            # the JSON's name: $OUT/NAME.json or out/bench/NAME.json


def step_flops(model, B, T):
    """6 * N_matmul * B * T + 12 * n_layer * B * T^2 * d_model: see the module docstring."""
    n_matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    cfg = model.cfg
    return 6 * n_matmul * B * T + 12 * cfg.n_layer * B * T * T * cfg.n_embd


def counted_flops(model, inputs, targets, loss_mask):
    """FLOPs of one forward + backward as FlopCounterMode counts them (float32, on a throwaway copy)."""
    m = copy.deepcopy(model)
    with FlopCounterMode(display=False) as counter:
        sft_loss(m(inputs), targets, loss_mask).backward()
    return counter.get_total_flops()


def make_optimizer(model):
    """AdamW as train_sft.py builds it (weight decay on matrices only)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=1e-3, betas=(0.9, 0.95))


def bench_config(name, batch, steps, flags, device, tok, examples, peaks):
    cfg = model_config(name, tok.vocab_size)
    torch.manual_seed(0)
    base = GPT(cfg).to(device)
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(flags.warmup + steps):   # the same batches for every dtype
        idx = torch.randint(len(examples), (batch,), generator=gen).tolist()
        prompts, responses = zip(*[examples[i] for i in idx])
        tokens, _, response_mask = pack_sequences(prompts, responses, tok.pad_id, device)
        batches.append(shift_for_next_token(tokens, response_mask))
    dtypes = flags.dtypes.split(",")
    runs = {}
    for dtype in dtypes:
        model = copy.deepcopy(base).train()
        runs[dtype] = {"model": model, "opt": make_optimizer(model), "times": [], "losses": []}

    for i, (inputs, targets, loss_mask) in enumerate(batches):
        for dtype in dtypes:                    # in turns, so a busy moment of the machine hits all dtypes
            run = runs[dtype]
            sync(device)
            t0 = time.perf_counter()
            with autocast(device, dtype):
                logits = run["model"](inputs)
            loss = sft_loss(logits, targets, loss_mask)
            run["opt"].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(run["model"].parameters(), 1.0)
            run["opt"].step()
            loss = loss.item()                  # waits for the step to finish
            sync(device)
            if i >= flags.warmup:
                run["times"].append(time.perf_counter() - t0)
                run["losses"].append(loss)

    timed = batches[flags.warmup:]
    flops = [step_flops(base, *x.shape) for x, _, _ in timed]
    inputs, targets, loss_mask = timed[0]
    check = counted_flops(base, inputs, targets, loss_mask)
    rows = []
    for dtype in dtypes:
        run = runs[dtype]
        peak = peaks[dtype]
        seconds = statistics.median(run["times"])
        achieved = sum(flops) / sum(run["times"])
        rows.append({"config": name, "dtype": dtype, "batch": batch,
                     "mean_tokens": sum(x.shape[1] for x, _, _ in timed) / len(timed),
                     "step_seconds": seconds, "achieved_flops": achieved, "peak_matmul_flops": peak,
                     "fraction_of_peak": achieved / peak, "first_loss": run["losses"][0],
                     "final_loss": statistics.mean(run["losses"][-5:])})
    ref = rows[0]
    for row in rows:
        row["speed_vs_" + ref["dtype"]] = ref["step_seconds"] / row["step_seconds"]
        row["final_loss_minus_" + ref["dtype"]] = row["final_loss"] - ref["final_loss"]
        row["max_abs_loss_diff"] = max(abs(a - b) for a, b in zip(runs[row["dtype"]]["losses"],
                                                                     runs[ref["dtype"]]["losses"]))
    return {"config": name, "model": vars(cfg), "n_params": base.num_params(), "steps": steps,
            "flops_formula_first_batch": step_flops(base, *inputs.shape),
            "flops_formula_without_attention_first_batch": step_flops(base, *inputs.shape)
            - 12 * cfg.n_layer * inputs.shape[0] * inputs.shape[1] ** 2 * cfg.n_embd,
            "flops_counted_first_batch": check, "rows": rows}


def main(argv=None):
    flags = parse_config(TrainStepConfig, sys.argv[1:] if argv is None else argv)
    device = setup(flags)
    tok = load_tokenizer()
    examples = sft_examples(tok, flags.data_prompts)   # train_sft.py's own make_examples
    # the peak, measured before and after the steps (the machine may be shared): the larger of the two
    dtypes = flags.dtypes.split(",")
    peaks = {d: matmul_peak(device, getattr(torch, d), flags.peak_n) for d in dtypes}
    results = []
    for name in flags.configs.split(","):
        batch = flags.gpu_batch if name == "gpu" and device.type != "cpu" else flags.batch
        steps = flags.gpu_steps or (flags.steps if name == "default" or device.type != "cpu" else 3)
        results.append(bench_config(name, batch, steps, flags, device, tok, examples, peaks))
    for d in dtypes:
        peaks[d] = max(peaks[d], matmul_peak(device, getattr(torch, d), flags.peak_n))
    for row in (r for res in results for r in res["rows"]):
        row["peak_matmul_flops"] = peaks[row["dtype"]]
        row["fraction_of_peak"] = row["achieved_flops"] / peaks[row["dtype"]]
    rows = [r for res in results for r in res["rows"]]
    print(f"\nSFT training step (forward + backward + AdamW) on {device}, {torch.get_num_threads()} threads:")
    ref = rows[0]["dtype"]
    print_table(rows, [("config", "config", "{}"), ("dtype", "dtype", "{}"), ("batch", "batch", "{}"),
                       ("mean_tokens", "tokens/seq", "{:.0f}"), ("step_seconds", "s / step", "{:.3f}"),
                       ("achieved_flops", "FLOP/s", "{:.2e}"), ("peak_matmul_flops", "matmul peak", "{:.2e}"),
                       ("fraction_of_peak", "of peak", "{:.1%}"), ("speed_vs_" + ref, f"speed vs {ref}", "{:.2f}x"),
                       ("final_loss", "loss (last 5)", "{:.4f}"), ("max_abs_loss_diff", "max |dloss|", "{:.4f}")])
    for res in results:
        print(f"  {res['config']}: {res['n_params'] / 1e6:.2f}M params; FLOPs of the first batch: formula "
              f"{res['flops_formula_first_batch']:.3e} ({res['flops_formula_without_attention_first_batch']:.3e} "
              f"without attention), FlopCounterMode {res['flops_counted_first_batch']:.3e}")
    report = {"flags": asdict(flags), "machine": machine_info(device), "flop_count": "formula 6*N_matmul*B*T + "
              "12*n_layer*B*T^2*d_model, checked against FlopCounterMode", "results": results}
    write_json(flags.out, report)
    return report


if __name__ == "__main__":
    main()
