"""
What the overoptimization experiment (nanorm/experiments/overoptimization.py) shows: its three figures and
its printed tables, drawn from its results dict (what it writes to overoptimization.json):

    (a) overoptimization_iterations.png   proxy and gold against PPO iteration, one line per beta
    (b) overoptimization_distance.png     gold and proxy gained against d = sqrt(KL), PPO and best-of-n,
                                          with the fitted Gao et al. forms (nanorm/experiments/gao.py)
    (c) overoptimization_behaviours.png   length, format marks, sycophancy and gibberish against d
"""

import os

import numpy as np

from nanorm import world
from nanorm.experiments.gao import predict

FIGURES = {"iterations": "overoptimization_iterations.png",    # (a) proxy and gold vs PPO iteration
           "distance": "overoptimization_distance.png",        # (b) gold and proxy vs d, PPO and best-of-n, fits
           "behaviours": "overoptimization_behaviours.png"}    # (c) length, format, sycophancy, gibberish vs d


def make_figures(res, out_dir):
    """Draw the three figures into out_dir; returns {name: path}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = res["runs"]
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(runs)))
    sft, bon = res["sft"], res["best_of_n"]["points"]
    se = res["gold_standard_error"]
    label = lambda r: f"PPO β={r['beta']:g}" + (" (train_ppo default)" if r["is_default"] else "")
    paths = {}

    def save(fig, name):
        fig.tight_layout()
        paths[name] = os.path.join(out_dir, FIGURES[name])
        fig.savefig(paths[name], dpi=120)
        plt.close(fig)

    # (a) proxy and gold against PPO iteration
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for (key, title), ax in zip([("proxy", "proxy: the RM's score (normalised)"), ("gold", "gold: the true utility")],
                                axes):
        for r, c in zip(runs, colors):
            ax.plot([p["iter"] for p in r["curve"]], [p[key] for p in r["curve"]], "o-", ms=3, color=c, label=label(r))
        ax.axhline(sft[key], color="gray", ls=":", lw=1, label="SFT")
        if key == "gold":     # the noise of one evaluation's mean: differences smaller than this are not real
            ax.axhspan(sft[key] - se, sft[key] + se, color="gray", alpha=0.15, lw=0, label="SFT ± 1 s.e.")
        ax.set(xlabel="PPO iteration", ylabel=key, title=title)
        ax.grid(alpha=0.3)
    small = runs[0]
    if small.get("early"):
        for ax in axes:
            ax.axvline(small["early"]["iter"], color=colors[0], ls="--", lw=0.8, alpha=0.6)
        axes[1].annotate("early checkpoint", (small["early"]["iter"], axes[1].get_ylim()[0]), fontsize=8,
                         color=colors[0], xytext=(3, 5), textcoords="offset points")
    axes[1].legend(fontsize=8)
    fig.suptitle("PPO against the reward model: does gold follow the proxy?")
    save(fig, "iterations")

    # (b) gold and proxy against d = sqrt(KL), PPO and best-of-n, with the fitted functional forms
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    d_max = max([p["d"] for r in runs for p in r["curve"]] + [p["d"] for p in bon])
    grid = np.linspace(1e-3, d_max * 1.05, 200)
    for r, c in zip(runs, colors):
        d = [p["d"] for p in r["curve"]]
        axes[0].plot(d, [p["gold"] - sft["gold"] for p in r["curve"]], "o", ms=4, color=c, label=label(r))
        if r["fit"]:
            dg = grid[grid <= max(d) * 1.05]
            axes[0].plot(dg, predict(r["fit"], dg), "-", color=c, lw=1.2,
                         label=f"  fit d(α−β log d): α={r['fit']['alpha']:.2f}±{_num(r['fit']['alpha_se']):.2f}, "
                               f"β={r['fit']['beta']:.2f}")
        axes[1].plot(d, [p["proxy"] - sft["proxy"] for p in r["curve"]], "o-", ms=3, color=c, label=label(r))
    d = [p["d"] for p in bon]
    base = res["best_of_n"]["pool"]            # best-of-n's own prompts: gold(0) = the mean of all its SFT samples
    axes[0].plot(d, [p["gold"] - base["gold"] for p in bon], "s", ms=5, color="crimson", label="best-of-n")
    fit = res["best_of_n"]["fit"]
    if fit:
        dg = grid[grid <= max(d) * 1.05]
        axes[0].plot(dg, predict(fit, dg), "-", color="crimson", lw=1.2,
                     label=f"  fit d(α−βd): α={fit['alpha']:.2f}±{_num(fit['alpha_se']):.2f}, β={fit['beta']:.2f}")
    axes[1].plot(d, [p["proxy"] - base["proxy"] for p in bon], "s-", ms=4, color="crimson", label="best-of-n")
    for n, x, y in [(p["n"], p["d"], p["proxy"] - base["proxy"]) for p in bon]:
        axes[1].annotate(f"n={n}", (x, y), fontsize=7, color="crimson", xytext=(3, -9), textcoords="offset points")
    axes[0].axhspan(-se, se, color="gray", alpha=0.15, lw=0, label="± 1 s.e. of one evaluation")
    for ax, what in zip(axes, ["gold", "proxy"]):
        ax.axhline(0, color="gray", ls=":", lw=1)
        ax.set(xlabel="d = sqrt(KL(π‖π_sft))  [sqrt nats]", ylabel=f"{what} − {what}(SFT)",
               title=f"{what} gained, against distance from SFT")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=8)
    save(fig, "distance")

    # (c) the hacked behaviours against d
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    for ax, (key, title) in zip(axes, [("length", "response length (words)"), ("format", "format marks per response"),
                                       ("sycophancy", "sycophancy rate (claim prompts)"),
                                       ("gibberish_rate", "gibberish rate")]):
        for r, c in zip(runs, colors):
            ax.plot([p["d"] for p in r["curve"]], [p[key] for p in r["curve"]], "o-", ms=3, color=c, label=label(r))
        ax.plot([p["d"] for p in bon], [p[key] for p in bon], "s-", ms=4, color="crimson", label="best-of-n")
        ax.set(xlabel="d = sqrt(KL(π‖π_sft))", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Behaviours the labelers over-reward, against distance from SFT")
    save(fig, "behaviours")
    return paths


# ----------------------------------------------------------------------------------------------------
# The printed tables


def _num(x):
    return float("nan") if x is None else x


def print_report(res, policies, cfg):
    """The summary tables: PPO per beta, best-of-n, the fits, behaviour per family, example responses."""
    sft, bon, small = res["sft"], res["best_of_n"], res["runs"][0]
    print(f"\nPPO on {res['n_eval_prompts']} validation prompts (one sample each; the SE of one gold mean is "
          f"{res['gold_standard_error']:.3f}); SFT: proxy {sft['proxy']:+.3f}, gold {sft['gold']:+.3f}, "
          f"gold std {sft['gold_std']:.3f}")
    print(f"  {'beta':>8} {'proxy':>7} {'gold':>7} {'peak gold':>9} {'peak/SE':>7} {'@iter':>5} {'fall':>6} "
          f"{'fall/std':>8} {'KL':>6} {'words':>6} {'syco':>5}")
    for r in res["runs"]:
        s = r["summary"]
        print(f"  {r['beta']:>7g}{'*' if r['is_default'] else ' '} {s['final_proxy']:+7.3f} {s['final_gold']:+7.3f} "
              f"{s['peak_gold']:+9.3f} {_num(s['peak_in_se']):7.1f} {s['peak_iter']:5d} {s['fall']:6.3f} "
              f"{_num(s['fall_in_sft_std']):8.2f} {s['final_kl']:6.2f} {s['final_length']:6.1f} "
              f"{_num(s['final_sycophancy']):5.2f}")
    print("  (* train_ppo.py's default beta; final = the last evaluation, iteration "
          f"{cfg.n_iters}; peak includes the SFT point, iteration 0; peak/SE = (peak - SFT) / SE)")
    hack = res["hacking"]
    g = hack["gold"]
    print(f"\nfailure modes at beta={hack['beta']:g}, share of answers (gold: SFT {g['sft']:+.3f}, peak "
          f"{g['peak']:+.3f}, final {g['final']:+.3f}; sycophantic: of the claim prompts):")
    for name, at in hack["rates"].items():
        print(f"  {name:12s} SFT {_num(at['sft']):.2f}  peak {_num(at['peak']):.2f}  final {_num(at['final']):.2f}"
              + ("  <- rises past SFT while gold falls" if at["rises"] else ""))
    print(f"\nbest-of-n on {bon['n_prompts']} prompts (SFT samples there: proxy {bon['pool']['proxy']:+.3f}, "
          f"gold {bon['pool']['gold']:+.3f}):  " + "  ".join(f"n={p['n']}: gold {p['gold']:+.3f}"
                                                           for p in bon["points"]))
    print("\nfits to gold - gold(SFT) against d = sqrt(KL):")
    for name, fit in [(f"PPO beta={r['beta']:g}", r["fit"]) for r in res["runs"]] + [("best-of-n", bon["fit"])]:
        if fit is None:
            print(f"  {name:16s} too few points to fit")
            continue
        peak = (f"peak R={fit['R_peak']:+.3f} at d={fit['d_peak']:.2f} (KL {fit['d_peak'] ** 2:.2f})"
                if fit["d_peak"] else "no peak")
        print(f"  {name:16s} {fit['form']:28s} alpha {fit['alpha']:+.3f} ± {_num(fit['alpha_se']):.3f} "
              f"beta {fit['beta']:+.3f} ± {_num(fit['beta_se']):.3f} R^2 {_num(fit['r2']):.2f}  {peak}")
    print("  (± one standard error of the least-squares fit, from the points' scatter about the curve)")

    print("\nbehaviour per family (validation prompts): words / format marks / agree rate / sycophancy / gold")
    print(f"  {'policy':18s}" + "".join(f" {fam:>30s}" for fam in world.FAMILIES))
    for name, (summary, _) in policies.items():
        cells = []
        for fam in world.FAMILIES:
            s = summary["per_family"].get(fam)
            if s is None:
                cells.append(f" {'-':>30s}")
                continue
            agree = f"{s['agree_rate']:.2f}/{s['sycophancy_rate']:.2f}" if "agree_rate" in s else "-/-"
            cells.append(f" {s['length']:5.1f}w {s['format']:4.2f}f {agree:>9s} {s['gold']:+6.2f}")
        print(f"  {name:18s}" + "".join(cells))

    print(f"\nexamples (the same prompts): SFT / beta={small['beta']:g} at iteration {small['early']['iter']} / "
          f"at iteration {small['final']['iter']}")
    for ex in res["examples"]:
        print(f"  {ex['prompt']}")
        for key in ("sft", "early", "final"):
            e = ex[key]
            print(f"    {key:5s} proxy {e['proxy']:+5.2f} gold {e['gold']:+5.2f} | {e['text']!r}")
    print(f"\nwrote {cfg.out_dir}/overoptimization.json and {len(res['figures'])} figures; "
          f"total {res['seconds']['total']:.0f}s")
