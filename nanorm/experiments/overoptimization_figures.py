"""
The three figures of the overoptimization experiment (nanorm/experiments/overoptimization.py), drawn from
its results dict (what it writes to overoptimization.json):

    (a) overoptimization_iterations.png   proxy and gold against PPO iteration, one line per beta
    (b) overoptimization_distance.png     gold and proxy gained against d = sqrt(KL), PPO and best-of-n,
                                          with the fitted Gao et al. forms (nanorm/experiments/gao.py)
    (c) overoptimization_behaviours.png   length, format marks and sycophancy against d
"""

import os

import numpy as np

from nanorm.experiments.gao import predict

FIGURES = {"iterations": "overoptimization_iterations.png",    # (a) proxy and gold vs PPO iteration
           "distance": "overoptimization_distance.png",        # (b) gold and proxy vs d, PPO and best-of-n, fits
           "behaviours": "overoptimization_behaviours.png"}    # (c) length, format, sycophancy vs d


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
                         label=f"  fit d(α−β log d): α={r['fit']['alpha']:.2f}, β={r['fit']['beta']:.2f}")
        axes[1].plot(d, [p["proxy"] - sft["proxy"] for p in r["curve"]], "o-", ms=3, color=c, label=label(r))
    d = [p["d"] for p in bon]
    base = res["best_of_n"]["pool"]            # best-of-n's own prompts: gold(0) = the mean of all its SFT samples
    axes[0].plot(d, [p["gold"] - base["gold"] for p in bon], "s", ms=5, color="crimson", label="best-of-n")
    fit = res["best_of_n"]["fit"]
    if fit:
        dg = grid[grid <= max(d) * 1.05]
        axes[0].plot(dg, predict(fit, dg), "-", color="crimson", lw=1.2,
                     label=f"  fit d(α−βd): α={fit['alpha']:.2f}, β={fit['beta']:.2f}")
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
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (key, title) in zip(axes, [("length", "response length (words)"), ("format", "format marks per response"),
                                       ("sycophancy", "sycophancy rate (claim prompts)")]):
        for r, c in zip(runs, colors):
            ax.plot([p["d"] for p in r["curve"]], [p[key] for p in r["curve"]], "o-", ms=3, color=c, label=label(r))
        ax.plot([p["d"] for p in bon], [p[key] for p in bon], "s-", ms=4, color="crimson", label="best-of-n")
        ax.set(xlabel="d = sqrt(KL(π‖π_sft))", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Behaviours the labelers over-reward, against distance from SFT")
    save(fig, "behaviours")
    return paths
