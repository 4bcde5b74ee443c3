"""Errors of the training module that mean "what you asked cannot be done", said in one line.

``python -m training`` ends them with exit status 2 and their message, no
traceback; `training.data.TrainingDataError` (the data) and
`training.ship.ShipError` (shipping) are their siblings.
"""

__all__ = ["RunError", "differences"]


class RunError(ValueError):
    """A run that cannot go on as asked: another run in its folder, or folds that cannot be made."""


def differences(stored, asked):
    """``key X there, Y asked`` for every key whose value differs, for a resumed run's error."""
    return "; ".join(f"{key} {stored.get(key)!r} there, {asked.get(key)!r} asked"
                     for key in sorted(set(stored) | set(asked))
                     if stored.get(key) != asked.get(key))
