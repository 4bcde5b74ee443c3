"""Wording of what the package tells people: counts with the right plural."""

__all__ = ["plural", "agree"]

_IRREGULAR = {"was": "were", "has": "have", "is": "are"}


def plural(count, noun):
    """``"1 star"``, ``"2 stars"``: a count and its noun, thousands separated.

    Parameters
    ----------
    count : int
    noun : str
        The singular; ``"y"`` becomes ``"ies"``, a few verbs are known.

    Examples
    --------
    >>> plural(1, "chunk"), plural(12000, "star"), plural(2, "entry")
    ('1 chunk', '12,000 stars', '2 entries')
    """
    count = int(count)
    if count != 1:
        if noun in _IRREGULAR:
            noun = _IRREGULAR[noun]
        elif noun.endswith("y") and noun[-2:-1] not in "aeiou":
            noun = noun[:-1] + "ies"
        else:
            noun = noun + "s"
    return f"{count:,} {noun}"


def agree(count, verb):
    """The form of ``verb`` (``"has"``, ``"was"``, ``"is"``) that agrees with ``count``.

    Examples
    --------
    >>> f"{plural(1, 'star')} {agree(1, 'has')}", f"{plural(3, 'star')} {agree(3, 'has')}"
    ('1 star has', '3 stars have')
    """
    return verb if int(count) == 1 else _IRREGULAR[verb]
