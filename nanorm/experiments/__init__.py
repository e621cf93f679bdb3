"""
Experiments built on the three stages: each one is a module run with `python -m nanorm.experiments.<name>`,
takes `--key=value` flags like the scripts, and writes its numbers (JSON) and figures (PNG) under out/.

    overoptimization   proxy vs gold under PPO at several KL coefficients and under best-of-n,
                       with the Gao et al. (2022) functional forms fitted to the gold curves
    rm_data_curve      SFT vs random initialisation of the RM, against the amount of data
    what_the_rm_sees   the RM's accuracy by kind of pair: style, fact, minimal pairs
    headroom           best-of-n against four judges: what the labelers' biases and the RM cost

Not experiments, but their parts: gao.py (the Gao et al. maths), overoptimization_report.py,
common.py (what several experiments share; no experiment imports another).
"""
