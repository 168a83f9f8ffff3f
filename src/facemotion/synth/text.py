"""Sentences for the TTS corpus: template grammar over a real English word list.

Function words come from small closed-class lists; content words are drawn from the
20,000 most frequent English words of ``wordfreq`` with probability proportional to
``frequency ** 0.5`` (Zipf frequency ``z`` gives ``frequency = 10 ** (z - 9)``), so common
words dominate as in read speech while the long tail still occurs. Sentences mix
statements, questions and exclamations, with commas between clauses.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

DETERMINERS = ("the", "a", "this", "that", "every", "some", "my", "your", "our", "their", "his", "her")
PRONOUNS = ("I", "you", "we", "they", "he", "she", "it")
AUXILIARIES = ("will", "can", "could", "should", "would", "might", "must", "did", "does")
PREPOSITIONS = ("in", "on", "at", "with", "from", "for", "about", "over", "under", "after",
                "before", "between", "through", "into", "near")
CONJUNCTIONS = ("and", "but", "so", "because", "while", "although", "when", "if")
WH_WORDS = ("what", "why", "how", "where", "when", "who")
_CLOSED = set(DETERMINERS + tuple(p.lower() for p in PRONOUNS) + AUXILIARIES + PREPOSITIONS
              + CONJUNCTIONS + WH_WORDS)

WORDS_PER_SECOND = 2.6
"""Average speaking rate (words/s) of the TTS voices at their default rate."""


@lru_cache(maxsize=1)
def content_words(n: int = 20000) -> tuple[tuple[str, ...], np.ndarray]:
    """Return (words, sampling probabilities [W]) of the ``n`` most frequent English words.

    Keeps lower-case alphabetic words of at least 3 letters that are not function words.
    """
    from wordfreq import top_n_list, zipf_frequency

    words = tuple(w for w in top_n_list("en", n)
                  if re.fullmatch(r"[a-z]*[aeiouy][a-z]*", w) and len(w) >= 3 and w not in _CLOSED)
    zipf = np.array([zipf_frequency(w, "en") for w in words])
    p = 10.0 ** (0.5 * (zipf - zipf.max()))
    return words, p / p.sum()


def _noun_phrase(rng: np.random.Generator, word) -> list[str]:
    out = [str(rng.choice(DETERMINERS))]
    if rng.random() < 0.4:
        out.append(word())
    out.append(word())
    return out


def _clause(rng: np.random.Generator, word) -> list[str]:
    subject = [str(rng.choice(PRONOUNS))] if rng.random() < 0.5 else _noun_phrase(rng, word)
    verb = [word()]
    if rng.random() < 0.35:
        verb = [str(rng.choice(AUXILIARIES)), word()]
    obj = _noun_phrase(rng, word)
    if rng.random() < 0.5:
        obj += [str(rng.choice(PREPOSITIONS))] + _noun_phrase(rng, word)
    return subject + verb + obj


def sample_sentence(rng: np.random.Generator, n_words: int) -> str:
    """Sample one utterance of about ``n_words`` words (at least 4), with punctuation.

    About 70 % are statements (``.``), 20 % questions (``?``, starting with a wh-word or an
    auxiliary) and 10 % exclamations (``!``). Clauses are joined by commas and conjunctions.

    Args:
        rng: random generator (the only source of randomness).
        n_words: target word count.

    Returns:
        The sentence, capitalised, e.g. ``"Why did the river carry our summer, and we ..."``.
    """
    words, p = content_words()
    draws = iter(rng.choice(len(words), size=4 * n_words + 64, p=p))

    def word() -> str:
        return words[next(draws)]

    kind = rng.choice(3, p=[0.7, 0.2, 0.1])
    tokens: list[str] = []
    if kind == 1:
        lead = [str(rng.choice(WH_WORDS))] if rng.random() < 0.5 else []
        tokens = lead + [str(rng.choice(AUXILIARIES)), str(rng.choice(PRONOUNS)), word()] + _noun_phrase(rng, word)
    while len(tokens) < max(n_words, 4) - 2:
        if tokens:
            tokens[-1] += ","
            tokens.append(str(rng.choice(CONJUNCTIONS)))
        tokens += _clause(rng, word)
    text = " ".join(tokens)
    text = text[0].upper() + text[1:]
    return text + ".?!"[kind]
