"""
Experiments built on the three stages: each one is a module run with `python -m nanorm.experiments.<name>`,
takes `--key=value` flags like the scripts, and writes its numbers (JSON) and figures (PNG) under out/.

    overoptimization   proxy vs gold under PPO at several KL coefficients and under best-of-n,
                       with the Gao et al. (2022) functional forms fitted to the gold curves
"""
