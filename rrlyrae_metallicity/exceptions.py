"""Exceptions and warnings raised by `rrlyrae_metallicity`."""

from astropy.utils.exceptions import AstropyUserWarning

__all__ = [
    "RRLyraeMetallicityError",
    "LightCurveError",
    "LightCurveTypeError",
    "InputFormatError",
    "OutputError",
    "ModelError",
    "ModelIntegrityError",
    "RRLyraeMetallicityWarning",
    "OutOfDomainWarning",
    "EpochSensitiveWarning",
]


class RRLyraeMetallicityError(Exception):
    """Base class of every error raised by this package."""


class LightCurveError(RRLyraeMetallicityError, ValueError):
    """A light curve cannot be turned into a model input.

    Parameters
    ----------
    message : str
        What is wrong, as a sentence.
    star : object, optional
        Identifier of the offending star (a ``source_id``, an index, ...).
    status : str, optional
        Short machine-readable status code, as written in the ``feh_status``
        column by `~rrlyrae_metallicity.add_feh`.
    """

    def __init__(self, message, *, star=None, status="invalid_lightcurve"):
        self.star = star
        self.status = status
        prefix = f"star {star}: " if star is not None else ""
        super().__init__(prefix + message)


class LightCurveTypeError(LightCurveError, TypeError):
    """A light curve is not a table the package can read (e.g. float times, no Time).

    Also a `LightCurveError`, so batch calls record it as the star's status.
    """


class InputFormatError(RRLyraeMetallicityError, ValueError):
    """A table or file does not have the columns or layout expected."""


class OutputError(RRLyraeMetallicityError, ValueError):
    """An output that cannot be written: unknown format, unwritable folder, or an input file."""


class ModelError(RRLyraeMetallicityError, ValueError):
    """An unknown model name, or a model that cannot be loaded."""


class ModelIntegrityError(ModelError):
    """A shipped model file is missing or its checksum does not match."""


class RRLyraeMetallicityWarning(AstropyUserWarning):
    """Base class of every warning issued by this package."""


class OutOfDomainWarning(RRLyraeMetallicityWarning):
    """Stars were predicted outside the model's training domain (an extrapolation)."""


class EpochSensitiveWarning(RRLyraeMetallicityWarning):
    """A star's [Fe/H] moves by more than half its σ without one of its epochs.

    Bit ``epoch_sensitive`` of ``feh_flags``; ``feh_epoch_influence`` holds
    the shift.
    """
