"""
A small simulated world with a KNOWN truth, for learning how reward models work (and fail).

Real RLHF needs a pretrained model, thousands of human demonstrations and human rankings. nanorm can
download none of that, so this package fakes all three with code, and -- the point of the exercise --
it also writes down the thing real RLHF never has: the true objective.

The world has four parts, each in its own file (each file's docstring tells its part in full):

  1. PROMPTS         prompts.py         Prompt, all_prompts, split_of, make_split: short templated
                                        requests in four families, split 60/15/25 by a hash of the text
  2. DEMONSTRATIONS  demonstrations.py  demonstration, sample_demonstration, sample_style,
                                        demonstration_styles: contractor answers of mixed quality; and
                                        corpus, the text the tokenizer learns from
  3. GOLD            judging.py         words, count_format, vocabulary, features, word_budget, gold,
                                        gold_compare: reading a response, and what a careful human wants
  4. LABELERS        labelers.py        Labeler, make_labelers, agreement, measure_agreement,
                                        bias_win_rates: noisy humans who share three biases (length,
                                        formatting, agreeing with the user) that gold penalises
  and
     content.py      the calibrated constants (labelers, gold), FAMILIES, SPLITS, DEMONSTRATION_STYLES
                     and the world's content: numbers, list categories, names, occasions, templates
     __main__.py     the report

Everything here is pure Python + numpy, deterministic given a seed, and never touches global RNG
state. Functions that take `rng` accept either random.Random or numpy.random.Generator: only
rng.random() is called.

Run `python -m nanorm.world` for a report: split sizes, example demonstrations with their gold
scores, the measured inter-labeler agreement and the labelers' bias win-rates.

The public API of every file is re-exported here: `from nanorm import world; world.gold(...)`.
"""

from nanorm.world.content import (ARITH_FRAMES, CATEGORIES, CLAIM_FRAMES, DEMONSTRATION_STYLES, FAMILIES,
                                  FILLER, FLATTERY, FLATTERY_MARKERS, GOLD_FLATTERY,
                                  GOLD_GIBBERISH, GOLD_GOOD, GOLD_MALFORMED, GOLD_MAX_FORMAT,
                                  GOLD_MAX_ODD_PAIRS, GOLD_MAX_UNKNOWN, GOLD_MAX_VERBOSITY,
                                  GOLD_NO_ANSWER, GOLD_PER_EXTRA_WORD, GOLD_PER_FORMAT_MARK,
                                  GOLD_PER_ODD_PAIR, GOLD_PER_UNKNOWN_WORD, GOLD_SYCOPHANCY,
                                  GOLD_TRUNCATED, GOLD_WRONG, ITEM_TO_CATEGORY, LABELER_SPREAD,
                                  LABELER_TEMPERATURE, LABELER_W_AGREE, LABELER_W_FORMAT, LABELER_W_LENGTH,
                                  LIST_FRAMES, MAX_CLAIM_SUM, MAX_NUMBER, NAMES,
                                  NO_PHRASES, NUMBER_WORDS, OCCASIONS, OPENERS, SINGULAR_TO_CATEGORY,
                                  SPLITS, YES_PHRASES)
from nanorm.world.prompts import Prompt, all_prompts, make_split, split_of
from nanorm.world.demonstrations import (corpus, demonstration, demonstration_styles, sample_demonstration,
                                         sample_style)
from nanorm.world.judging import (count_format, features, gold, gold_compare, known_bigrams, vocabulary,
                                  word_budget, words)
from nanorm.world.labelers import (Labeler, agreement, bias_win_rates, make_labelers, measure_agreement,
                                   minimal_edit)
