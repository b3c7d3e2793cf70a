"""Region names: normalisation for matching, and suggestions for names that match nothing."""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable

# Below this similarity a "suggestion" is noise rather than help (0..1, difflib ratio).
SUGGESTION_CUTOFF = 0.6


def normalise_name(name: str) -> str:
    """The form names are compared in: NFKC, trimmed, inner whitespace collapsed, case-folded.

    ``"  LEFT   Kidney "`` and ``"left kidney"`` normalise alike, as do full-width and
    ordinary letters (NFKC). Case-folding can un-normalise some characters, so NFKC is
    applied again afterwards.
    """
    text = unicodedata.normalize("NFKC", name)
    text = " ".join(text.split())
    return unicodedata.normalize("NFKC", text.casefold())


def _similarity(a: str, b: str) -> float:
    # Word order differs between annotators ("Kidney Left" / "Left Kidney"), so the
    # better of the plain and the word-sorted comparison counts.
    plain = difflib.SequenceMatcher(None, a, b).ratio()
    by_words = difflib.SequenceMatcher(
        None, " ".join(sorted(a.split())), " ".join(sorted(b.split()))
    ).ratio()
    return max(plain, by_words)


def closest_names(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """Up to ``limit`` candidates most like ``name`` (compared normalised), best first.

    Ties keep the candidates' order. Candidates less similar than ``SUGGESTION_CUTOFF``
    are never returned.
    """
    target = normalise_name(name)
    if not target or limit <= 0:
        return []
    scored = []
    for order, candidate in enumerate(candidates):
        score = _similarity(target, normalise_name(candidate))
        if score >= SUGGESTION_CUTOFF:
            scored.append((-score, order, candidate))
    scored.sort()
    return [c for _, _, c in scored[:limit]]
