"""Write result tables: atomically, readable by collaborators, never over an input, with provenance.

`write_table_atomically` writes ECSV, CSV, FITS or VOTable (the format from
the extension, `OUTPUT_FORMATS`):

- through a temporary file in the same folder, renamed into place, so that a
  reader never sees half a table;
- with the permissions the umask allows (``0644`` under ``umask 022``), as
  any other file the user makes;
- never over one of the run's input files;
- with the provenance of `provenance` in the format's own place: the ECSV
  header (``meta``), FITS header keywords (`FITS_KEYWORDS`) and VOTable
  ``INFO`` elements. CSV has no place for it that every CSV reader skips,
  so a CSV output stays plain and its provenance goes beside it, in
  ``<output>.provenance.json``.

VOUnit and the FITS standard have no ``dex``: in those two formats the
[Fe/H] columns carry no unit, their description starts with ``[dex]``, and
in a VOTable their UCD says what they are (``phys.abund.Z``,
``stat.error;phys.abund.Z``). ECSV and CSV keep the unit ``dex``.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u

from .exceptions import OutputError
from .version import version

__all__ = ["OUTPUT_FORMATS", "FITS_KEYWORDS", "output_format", "provenance",
           "provenance_sidecar", "check_not_an_input", "check_writable",
           "write_table_atomically"]

#: astropy format of an output table, by file extension.
OUTPUT_FORMATS = {".ecsv": "ascii.ecsv", ".csv": "ascii.csv", ".fits": "fits", ".fit": "fits",
                  ".xml": "votable", ".vot": "votable"}

#: FITS header keyword of each provenance key (FITS keywords have 8 characters).
FITS_KEYWORDS = {
    "feh_package": "FEHPKG",
    "feh_model": "FEHMODEL",
    "feh_model_sha256": "FEHSHA",
    "feh_created": "FEHDATE",
    "feh_inputs": "FEHINPUT",
    "feh_preprocessing": "FEHPREP",
    "feh_label_scale": "FEHSCALE",
}

_UCDS = {"feh_phot": "phys.abund.Z", "feh_phot_std": "stat.error;phys.abund.Z"}


def output_format(path):
    """The astropy format of an output path, from its extension.

    Raises
    ------
    rrlyrae_metallicity.exceptions.OutputError
        For an extension that is not in `OUTPUT_FORMATS`.
    """
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise OutputError(f"cannot tell the output format of {os.fspath(path)}; use one of "
                          f"{', '.join(sorted(OUTPUT_FORMATS))}")
    return fmt


def provenance(ensemble, *, inputs=(), created=None):
    """What a result table records about how it was made.

    Parameters
    ----------
    ensemble : `~rrlyrae_metallicity.ensemble.FehEnsemble`
        The model.
    inputs : sequence of str, optional
        The input files, as given.
    created : `datetime.datetime`, optional
        The creation time (UTC); now by default.

    Returns
    -------
    dict of str to str
        ``feh_package`` (name and version), ``feh_model``,
        ``feh_model_sha256`` (of the model's manifest, which holds the sha256
        of every model file, and its components'), ``feh_created`` (ISO 8601,
        UTC), ``feh_inputs`` (only when given), ``feh_preprocessing`` (JSON)
        and ``feh_label_scale`` (the labels the model was trained on).
    """
    created = created or datetime.datetime.now(datetime.timezone.utc)
    record = {
        "feh_package": f"rrlyrae_metallicity {version}",
        "feh_model": ensemble.name,
        "feh_model_sha256": ensemble.sha256,
        "feh_created": created.isoformat(timespec="seconds"),
    }
    if inputs:
        record["feh_inputs"] = "; ".join(os.fspath(i) for i in inputs)
    record["feh_preprocessing"] = json.dumps(ensemble.preprocessing.to_dict(), sort_keys=True)
    record["feh_label_scale"] = str(ensemble.manifest.get("training_data", {}).get("label", ""))
    return record


def check_not_an_input(output, inputs):
    """Refuse an output path that is one of the inputs.

    Raises
    ------
    rrlyrae_metallicity.exceptions.OutputError
        If ``output`` names the same file as one of ``inputs``.
    """
    target = Path(output)
    for given in inputs:
        source = Path(given)
        same = (target.exists() and source.exists() and os.path.samefile(target, source)) or (
            target.resolve() == source.resolve())
        if same:
            raise OutputError(f"{os.fspath(output)}: is an input of this run; refusing to write "
                              "the results over it (choose another -o)")


def check_writable(path):
    """Refuse, before any work, an output path that cannot be written.

    Raises
    ------
    rrlyrae_metallicity.exceptions.OutputError
        If ``path`` is a folder, or its folder does not exist, is not a
        folder or cannot be written to. Folders are never created: a
        mistyped path should not silently make new ones.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    name = os.fspath(path)
    if target.is_dir():
        raise OutputError(f"{name}: is a folder; give a file name (.ecsv, .csv, .fits, .xml)")
    if not folder.exists():
        raise OutputError(f"{name}: no such folder {os.fspath(folder)!r} (folders are not "
                          "created)")
    if not folder.is_dir():
        raise OutputError(f"{name}: {os.fspath(folder)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{name}: permission denied to write in {os.fspath(folder)!r}")


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_table_atomically(table, path, *, inputs=()):
    """Write ``table`` to ``path`` (format from the extension) via a temporary file.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The result; its ``meta`` keys named in `FITS_KEYWORDS` are its
        provenance.
    path : str or path-like
        Ends in one of the extensions of `OUTPUT_FORMATS`.
    inputs : sequence of path-like, optional
        Files the table was made from: ``path`` must be none of them.

    Raises
    ------
    rrlyrae_metallicity.exceptions.OutputError
        For an unknown extension, an output that is an input, or a folder
        that cannot be written.
    """
    path = Path(path)
    fmt = output_format(path)
    check_not_an_input(path, inputs)
    check_writable(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=path.suffix)
    except OSError as error:
        raise OutputError(f"{os.fspath(path)}: cannot write there ({error.strerror})") from None
    os.close(handle)
    try:
        if fmt == "ascii.csv":
            check_not_an_input(provenance_sidecar(path), inputs)
            _write_sidecar(table, path)
        _WRITERS[fmt](table, tmp)
        # mkstemp makes the file private (0600) whatever the umask.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as error:
        raise OutputError(f"{os.fspath(path)}: cannot be written "
                          f"({error.strerror or error})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _provenance_items(table):
    return [(key, table.meta[key]) for key in FITS_KEYWORDS if key in table.meta]


def _write_ecsv(table, path):
    table.write(path, format="ascii.ecsv", overwrite=True)


def _write_csv(table, path):
    table.write(path, format="ascii.csv", overwrite=True)


def provenance_sidecar(path):
    """Where the provenance of a CSV output is written: ``<path>.provenance.json``."""
    return Path(f"{os.fspath(path)}.provenance.json")


def _write_sidecar(table, path):
    """Write the provenance of a CSV output next to it (atomically, before the table)."""
    sidecar = provenance_sidecar(path)
    handle, tmp = tempfile.mkstemp(dir=sidecar.parent, prefix=f".{sidecar.name}.")
    try:
        with os.fdopen(handle, "w") as f:
            json.dump(dict(_provenance_items(table)), f, indent=1)
            f.write("\n")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, sidecar)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _without_dex(table):
    """A shallow copy whose dex columns carry no unit, ``[dex]`` in their description."""
    table = table.copy(copy_data=False)
    for column in table.itercols():
        if column.unit == u.dex:
            column.unit = None
            column.description = f"[dex] {column.description or ''}".strip()
    return table


def _write_fits(table, path):
    table = _without_dex(table)
    provenance_items = _provenance_items(table)
    table.meta = {key: value for key, value in table.meta.items()
                  if key not in FITS_KEYWORDS and _fits_value(value)}
    for key, value in provenance_items:
        table.meta[FITS_KEYWORDS[key]] = value
    with warnings.catch_warnings():
        # Long metadata keys become HIERARCH cards, long values CONTINUE cards:
        # valid, and expected.
        warnings.filterwarnings("ignore", message=".*HIERARCH card will be created")
        warnings.filterwarnings("ignore", category=UserWarning,
                                message=".*[Kk]eyword.*too long.*")
        table.write(path, format="fits", overwrite=True)


def _fits_value(value):
    return isinstance(value, (str, int, float, bool, np.integer, np.floating, np.bool_))


def _write_votable(table, path):
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info

    table = _without_dex(table)
    for name, column in table.columns.items():
        if column.dtype.kind == "u" and column.dtype.itemsize == 8:
            # VOTable has no unsigned 64-bit integers: a source_id at or above
            # 2**63 is kept exactly as text rather than wrapped to a negative long.
            if (np.asarray(column) > np.iinfo(np.int64).max).any():
                table[name] = np.asarray(column).astype(str)
            else:
                table[name] = np.asarray(column).astype(np.int64)
    provenance_items = _provenance_items(table)
    table.meta = {}
    votable = from_table(table)
    resource = votable.resources[0]
    for key, value in provenance_items:
        resource.infos.append(Info(name=key, value=str(value)))
    element = votable.get_first_table()
    for name, ucd in _UCDS.items():
        if name in table.colnames:
            element.get_field_by_id(name).ucd = ucd
    votable.to_xml(path)


_WRITERS = {"ascii.ecsv": _write_ecsv, "ascii.csv": _write_csv, "fits": _write_fits,
            "votable": _write_votable}
