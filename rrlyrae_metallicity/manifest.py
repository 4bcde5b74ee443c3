"""The manifest of a shipped model, read and written through one dataclass.

Every model in ``rrlyrae_metallicity/data/models/<name>/`` has a
``manifest.json``: what the model is (architecture, members and their
checksums, or the components of a composite), how its inputs are made
(pre-processing), what it was trained on (data, domain, configuration,
cross-validation metrics) and how its outputs are served (output stretch,
uncertainty calibration). `ModelManifest` is the one definition of that file:
the training module writes and reads it through this class, and so should
everything else that reads it, so that writer and readers agree on one format.

Reading then writing a manifest gives back the same bytes: keys keep their
order and keys this version does not know are kept (``extra``).
"""

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

__all__ = ["MANIFEST_VERSION", "ModelManifest"]

#: Version of the manifest format written by the training module.
MANIFEST_VERSION = 1

# Attributes of ModelManifest that are not keys of the file.
_BOOKKEEPING = ("extra", "key_order")


@dataclass(kw_only=True)
class ModelManifest:
    """The content of a shipped model's ``manifest.json``.

    Every key is optional in the file, and `None` stands for a key that is
    absent. The values are kept as JSON gives them (dicts, lists, numbers,
    strings); their meaning is documented where they are made (the
    ``training`` module) and used (`rrlyrae_metallicity.ensemble`).

    Parameters
    ----------
    name : str, optional
        Model name, as passed to ``predict_feh(model=...)``.
    manifest_version : int, optional
        Version of the format (``MANIFEST_VERSION``).
    architecture : str, optional
        Network architecture; for a composite, its components' joined by ``+``.
    components : list of dict, optional
        A composite's components: ``{"name": ..., "weight": ...}`` each.
        `None` for a plain ensemble.
    preprocessing : dict, optional
        Keyword arguments of
        `~rrlyrae_metallicity.preprocessing.PreprocessingConfig`.
    onnx : dict, optional
        ONNX graph input name and opset.
    members : list of dict, optional
        A plain ensemble's ONNX files: ``file``, ``fold``, ``member``,
        ``seed`` and ``sha256`` each. `None` for a composite.
    crossfit_members : list of dict, optional
        A distilled model's fold students (``file``, ``fold``, ``sha256``,
        ``native_file``, ``native_sha256``): each trained without its fold,
        they reproduce the out-of-fold predictions its accuracy and
        calibration were measured on. Never served; `None` for an ensemble.
    training_data : dict, optional
        Name, description, label and label unit of the training set.
    training_domain : dict, optional
        ``[min, max]`` of each quantity seen in training (the out-of-domain
        flags).
    training_config : dict, optional
        The cross-validation configuration of a plain ensemble.
    cv_metrics : dict, optional
        Cross-validation metrics.
    quality : dict, optional
        The model's out-of-fold error against predicting every star by the
        median label (``better_than_median``, and a ``warning`` when it is
        not); loading a model that is no better warns.
    produced_by : str, optional
        The command that produced the model.
    training_commit : str, optional
        Commit of the repository the model was made at.
    created : str, optional
        ISO date.
    output_stretch : dict, optional
        Stretch of the predictions about their median
        (`rrlyrae_metallicity.stretch`).
    uncertainty_calibration : dict, optional
        The calibration of ``feh_phot_std``
        (`rrlyrae_metallicity.uncertainty`).
    extra : dict
        Keys of the file that are none of the above, kept as they are.
    key_order : tuple of str
        The order of the keys in the file. ``from_dict`` records it, so that
        writing back keeps the file's order. ``to_dict`` writes the keys listed
        here first, in this order (a field listed here is written even when
        `None`, as ``null``), then the other fields that are not `None` in the
        order above, then the other keys of ``extra``.
    """

    name: str | None = None
    manifest_version: int | None = None
    architecture: str | None = None
    components: list | None = None
    preprocessing: dict | None = None
    onnx: dict | None = None
    members: list | None = None
    crossfit_members: list | None = None
    training_data: dict | None = None
    training_domain: dict | None = None
    training_config: dict | None = None
    cv_metrics: dict | None = None
    quality: dict | None = None
    produced_by: str | None = None
    training_commit: str | None = None
    created: str | None = None
    output_stretch: dict | None = None
    uncertainty_calibration: dict | None = None
    extra: dict = field(default_factory=dict)
    key_order: tuple = ()

    @classmethod
    def field_names(cls):
        """The keys of the file that are fields, in field order.

        Returns
        -------
        tuple of str
        """
        return tuple(f.name for f in fields(cls) if f.name not in _BOOKKEEPING)

    @property
    def is_composite(self):
        """Whether the model is a weighted mean of other shipped models (it has ``components``)."""
        return self.components is not None

    @classmethod
    def from_dict(cls, content):
        """A manifest from the parsed content of ``manifest.json``.

        Parameters
        ----------
        content : dict
            The JSON object. Its values are used, not copied.

        Returns
        -------
        `ModelManifest`
        """
        if not isinstance(content, dict):
            raise TypeError(f"a manifest is a JSON object, not {type(content).__name__}")
        known = set(cls.field_names())
        return cls(**{key: value for key, value in content.items() if key in known},
                   extra={key: value for key, value in content.items() if key not in known},
                   key_order=tuple(content))

    def to_dict(self):
        """The content of ``manifest.json``, keys in the order they are written.

        Returns
        -------
        dict
            A new dict; its values are the manifest's own (not copied).
        """
        known = self.field_names()
        content = {}
        for key in self.key_order:
            if key in known:
                content[key] = getattr(self, key)
            elif key in self.extra:
                content[key] = self.extra[key]
        for key in known:
            if key not in content and getattr(self, key) is not None:
                content[key] = getattr(self, key)
        for key, value in self.extra.items():
            content.setdefault(key, value)
        return content

    def drop(self, key):
        """Remove ``key`` from the manifest (a field becomes `None`), wherever it was.

        Parameters
        ----------
        key : str
            A field or a key of ``extra``; absent keys are ignored.
        """
        if key in self.field_names():
            setattr(self, key, None)
        self.extra.pop(key, None)
        self.key_order = tuple(k for k in self.key_order if k != key)

    @classmethod
    def read(cls, path):
        """Read a ``manifest.json``.

        Parameters
        ----------
        path : path-like

        Returns
        -------
        `ModelManifest`
        """
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def write(self, path):
        """Write the manifest to ``path`` as the shipped files are written.

        Two-space indented JSON with a final newline, non-ASCII characters
        escaped.

        Parameters
        ----------
        path : path-like
        """
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
