"""
What each stage prints at the end: its eval.json as a few readable lines and tables.

Only printing lives here; the numbers are computed in nanorm/evaluate.py and returned by each stage's
main(), so a program reads them from the return value (or eval.json), never from this text.
"""

import torch


def print_footer(device, seconds):
    print(f"total time {seconds:.0f}s")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


def print_sft_report(report, cfg, device, seconds):
    print("\nsample responses (held-out test prompts):")
    for s in report["samples"][:8]:
        prompt = s["prompt"] if len(s["prompt"]) <= 100 and "\n" not in s["prompt"] else repr("..." + s["prompt"][-97:])
        score = f"gold {s['gold']:+.2f} " if "gold" in s else ""   # real data: no gold column
        print(f"  {score}{'' if s['finished'] else '[TRUNCATED] '}| {prompt}  ->  {s['response']!r}")
    print(f"\nEOS within {cfg.max_response_tokens} tokens: {report['eos_rate']:.1%} of {report['n_test_prompts']} "
          f"test prompts")
    if report["per_family"] is None:
        print(f"gold score: none ({cfg.data} is real data: no gold utility, so no gold or per-family scores)")
    else:
        print(f"gold score: mean {report['gold_mean']:+.3f}, std {report['gold_std']:.3f}")
        for fam, s in report["per_family"].items():
            print(f"  {fam:10s} n={s['n']:4d}  gold {s['gold_mean']:+.3f} ± {s['gold_std']:.3f}")
    print(f"distinct responses among 5 samples of the same prompt: {report['distinct_of_5_samples']:.2f} "
          f"(mean over {min(50, report['n_test_prompts'])} prompts)")
    print_footer(device, seconds)


def print_rm_report(report, is_world, device):
    print(f"\nheld-out evaluation ({report['n_eval_prompts']} prompts, {report['n_eval_pairs']} pairs):")
    print(f"  pairwise accuracy vs held-out labeler   {report['accuracy']:.3f}"
          + (f" (the {report['n_eval_ties']} ties left out)" if report.get("n_eval_ties") else ""))
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
        print("  (real data: no gold, no second labeler, no Bayes ceiling: the labels are the file's)")
    print(f"  calibration error (ECE)                 {report['ece']:.3f}")
    print_footer(device, report["total_seconds"])


def print_validation_point(what, step, point, extra=""):
    print(f"eval {what} {step:4d} | proxy {point['proxy']:+.3f} | gold {point['gold']:+.3f} | KL {point['kl']:.2f} | "
          f"length {point['length']:.1f} words | sycophancy {_num(point['sycophancy']):.2f}{extra}", flush=True)


def print_samples(rows, prompts, n=6):
    """A few validation samples with their proxy score, gold score and KL to SFT."""
    print(f"  {'proxy':>6} {'gold':>6} {'KL':>6} | prompt -> response")
    for r, p in list(zip(rows, prompts))[:n]:
        print(f"  {r['proxy']:+6.2f} {r['gold']:+6.2f} {r['kl']:6.2f} | {p.text} -> {r['text']!r}")


def print_policy_table(summaries, n_prompts):
    """The test-prompt comparison: one row per policy (SFT first), judged by gold against SFT."""
    print(f"\nheld-out test prompts: {n_prompts} (one sample each; wins judged by gold, ties count half)")
    print(f"  {'policy':12s} {'win vs SFT':>10s} {'win vs PPO':>10s} {'proxy':>7s} {'gold':>7s} {'KL':>6s} "
          f"{'words':>6s} {'agree':>6s} {'syco':>5s}")
    for name, s in summaries.items():
        claim = s["per_family"].get("claim", {})
        win_sft = f"{s['win_rate_vs_sft']:.3f}" if "win_rate_vs_sft" in s else "-"
        win_ppo = f"{s['win_rate_vs_ppo']:.3f}" if "win_rate_vs_ppo" in s else "-"
        label = name.upper() if "_" not in name else name.replace("_of_", "-of-")   # sft -> SFT, best_of_16 -> best-of-16
        print(f"  {label:12s} {win_sft:>10s} {win_ppo:>10s} {s['proxy']:+7.3f} {s['gold']:+7.3f} {s['kl']:6.2f} "
              f"{s['length']:6.1f} {_num(claim.get('agree_rate')):6.2f} {_num(claim.get('sycophancy_rate')):5.2f}")


def _num(x):
    return float("nan") if x is None else x


def print_dpo_as_reward_model(report):
    print("\nsample responses (held-out test prompts):")
    for s in report["samples"][:6]:
        print(f"  {s['prompt']}")
        print(f"    SFT gold {s['gold_sft']:+.2f} | {s['sft']!r}\n    DPO gold {s['gold_dpo']:+.2f} | {s['dpo']!r}")
    ir, rm = report["implicit_reward"], report["rm"]
    fmt = lambda x: f"{x:8.3f}" if x is not None else f"{'-':>8s}"
    print(f"\nas a reward model, on the RM's held-out comparisons, ranked by a held-out labeler "
          f"({ir['n_prompts']} prompts, {ir['n_pairs']} pairs once duplicate responses are dropped):")
    print(f"  {'':40s} {'vs labeler':>10s} {'vs gold':>8s}")
    print(f"  {'DPO implicit reward beta*log(pi/pi_ref)':40s} {ir['accuracy']:10.3f} {fmt(ir['gold_accuracy'])}")
    print(f"  {'reward model, the same pairs':40s} {rm['accuracy']:10.3f} {fmt(rm['gold_accuracy'])}")
