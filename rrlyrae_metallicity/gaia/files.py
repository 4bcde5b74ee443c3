"""Open the table files users hold: format, encoding, compression, blocks, errors.

Every file the package reads (epoch photometry, ``vari_rrlyrae`` tables)
goes through `read_table` or `iter_table_blocks`:

- the format comes from ``format=``, else from the extension, else from the
  first bytes of the file (an XML VOTable, a FITS file, an ECSV header,
  else comma-separated text), so a CSV named ``.txt`` reads as CSV;
- text may start with a UTF-8 byte-order mark and may be gzip, bzip2 or xz
  compressed;
- anything that goes wrong while reading (a truncated file, a directory, no
  permission, an empty file, a corrupt header) raises one
  `~rrlyrae_metallicity.exceptions.InputFormatError` whose one-line
  message names the file and the problem.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from itertools import islice

import numpy as np
from astropy.table import Table
from astropy.units import UnitsWarning

from ..exceptions import InputFormatError

__all__ = ["FORMATS", "guess_format", "read_table", "iter_table_blocks", "reading"]

#: astropy format of a table file, by extension.
FORMATS = {
    ".xml": "votable",
    ".vot": "votable",
    ".votable": "votable",
    ".ecsv": "ascii.ecsv",
    ".csv": "ascii.csv",
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
    ".parquet": "parquet",
}
_OPENERS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}
_TEXT_FORMATS = ("ascii.csv", "ascii.ecsv")
_BOM = "\ufeff"


def _without_compression(path):
    name = os.fspath(path).lower()
    for suffix in _OPENERS:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _open_binary(path):
    suffix = os.path.splitext(os.fspath(path).lower())[1]
    if suffix in _OPENERS:
        return __import__(_OPENERS[suffix]).open(path, "rb")
    return open(path, "rb")


def _open_text(path):
    # utf-8-sig drops a byte-order mark (spreadsheets write one) and reads
    # files without one unchanged.
    suffix = os.path.splitext(os.fspath(path).lower())[1]
    if suffix in _OPENERS:
        return __import__(_OPENERS[suffix]).open(path, "rt", encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig")


def guess_format(path):
    """The astropy format of a table file: from its extension, else its first bytes.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    str
        One of the values of `FORMATS`.

    Raises
    ------
    rrlyrae_metallicity.exceptions.InputFormatError
        If the file cannot be opened, is empty, or its format cannot be told.
    """
    known = FORMATS.get(os.path.splitext(_without_compression(path))[1])
    if known is not None:
        return known
    with reading(path):
        with _open_binary(path) as handle:
            head = handle.read(2880)
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"SIMPLE  ="):
        return "fits"
    if text.startswith((b"<?xml", b"<VOTABLE")) or b"<VOTABLE" in text[:1000]:
        return "votable"
    if text.startswith(b"# %ECSV"):
        return "ascii.ecsv"
    if text.startswith(b"PAR1"):
        return "parquet"
    first_line = text.split(b"\n", 1)[0]
    if b"," in first_line:
        return "ascii.csv"
    raise InputFormatError(
        f"{os.fspath(path)}: cannot tell the format from the name or the content; give it "
        "(--format votable, ascii.ecsv, ascii.csv, fits or parquet)")


@contextlib.contextmanager
def reading(path):
    """Turn whatever goes wrong while reading ``path`` into one `InputFormatError`.

    The error's one-line message starts with the file's name. A table in
    memory (not a path) passes through unchanged.
    """
    if not isinstance(path, (str, os.PathLike)):
        yield
        return
    name = os.fspath(path)
    try:
        if os.path.isdir(name):
            raise InputFormatError(f"{name}: is a directory, not a table file")
        if os.path.isfile(name) and os.path.getsize(name) == 0:
            raise InputFormatError(f"{name}: is empty (0 bytes)")
        yield
    except InputFormatError as error:
        message = str(error)
        raise InputFormatError(message if name in message else f"{name}: {message}") from None
    except FileNotFoundError:
        raise InputFormatError(f"{name}: no such file") from None
    except PermissionError:
        raise InputFormatError(f"{name}: permission denied") from None
    except (MemoryError, KeyboardInterrupt, ImportError):
        raise
    except Exception as error:  # noqa: BLE001 - any reader failure is a bad file
        raise InputFormatError(
            f"{name}: cannot be read (truncated or not a valid table file?): "
            f"{_one_line(error)}") from error


def _one_line(error):
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:300]


def _checked(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"'source' should be a path or an astropy Table, not "
                        f"{type(path).__name__}")
    return os.fspath(path)


def _without_bom(table):
    """Column names as written: a byte-order mark read into the first name is dropped."""
    for name in table.colnames[:1]:
        if name.startswith(_BOM):
            table.rename_column(name, name.lstrip(_BOM))
    return table


def read_table(source, format=None):
    """Read a whole table file (or return a table given in memory).

    Parameters
    ----------
    source : str, path-like or `~astropy.table.Table`
    format : str, optional
        astropy format; by default `guess_format`.

    Returns
    -------
    `~astropy.table.Table`

    Raises
    ------
    rrlyrae_metallicity.exceptions.InputFormatError
        Naming the file and the problem.
    """
    if isinstance(source, Table):
        return source
    path = _checked(source)
    with reading(path):
        format = format or guess_format(path)
        with warnings.catch_warnings():
            # Units written in the file are replaced by ours; unknown unit
            # strings in archive files must not get in the way.
            warnings.simplefilter("ignore", UnitsWarning)
            if format in _TEXT_FORMATS:
                with _open_text(path) as handle:
                    text = handle.read()
                _check_complete(text)
                lines = text.splitlines()
                options = {"guess": False} if format == "ascii.csv" else {}
                table = Table.read(lines, format=format, **options)
            else:
                table = Table.read(path, format=format)
    return _without_bom(table)


def iter_table_blocks(source, format=None, block_rows=200_000):
    """Tables of at most ``block_rows`` consecutive rows of ``source``.

    CSV and ECSV (also compressed) and Parquet files are parsed a block at a
    time, FITS files memory-mapped; other formats (VOTable) are read whole.

    Raises
    ------
    rrlyrae_metallicity.exceptions.InputFormatError
        Naming the file and the problem, when the first block or a later one
        cannot be read.
    """
    if isinstance(source, Table):
        yield from _table_blocks(source, block_rows)
        return
    path = _checked(source)
    with reading(path):
        format = format or guess_format(path)
    if format in _TEXT_FORMATS:
        blocks = _text_blocks(path, format, block_rows)
    elif format == "parquet":
        blocks = _parquet_blocks(path, block_rows)
    elif format == "fits" and _without_compression(path) == path.lower():
        blocks = _fits_blocks(path, block_rows)
    else:
        blocks = iter([read_table(path, format)])
    while True:
        with reading(path):
            block = next(blocks, None)
        if block is None:
            return
        yield block


def _table_blocks(table, block_rows):
    for start in range(0, len(table), block_rows):
        yield table[start : start + block_rows]


def _fits_blocks(path, block_rows):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        table = Table.read(path, format="fits", memmap=True)
    yield from _table_blocks(table, block_rows)


def _text_blocks(path, format, block_rows):
    """Parse a CSV or ECSV file ``block_rows`` data lines at a time.

    Each block is parsed together with the file's header (the ECSV YAML
    header and the column names), so that it gets the file's own column
    names, types and units.
    """
    with _open_text(path) as handle:
        header = []
        for line in handle:
            header.append(line)
            if not line.startswith("#") and line.strip():
                break  # the column-name line
        options = {"guess": False} if format == "ascii.csv" else {}
        while lines := list(islice(handle, block_rows)):
            _check_complete(lines[-1])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnitsWarning)
                block = Table.read(header + lines, format=format, **options)
            # Yield outside the catch_warnings: a generator suspended (or
            # finalised late) inside one would restore stale warning filters
            # over whatever code runs meanwhile.
            yield block


def _check_complete(text):
    """Refuse a text table that does not end with a line break: it was cut short.

    astropy would read a cut row with its missing cells masked (or a cut
    number as another number), and the sources after the cut would silently
    have no light curve. Writers end their last row with a line break.
    """
    if text and text[-1] not in "\n\r":
        raise InputFormatError("does not end with a line break, so its last row was cut: the "
                               "file is truncated (download or copy it again; if it is "
                               "complete, add a line break at its end)")


def _parquet_blocks(path, block_rows):
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(
            'Reading Parquet files needs pyarrow: pip install "rrlyrae_metallicity[dask]" '
            "or pip install pyarrow"
        ) from exc
    with pq.ParquetFile(path) as parquet:
        # One reader per row group: a single iter_batches over the whole file
        # keeps Arrow memory growing with the file (about 10 MB per row group
        # with pyarrow 26).
        for group in range(parquet.num_row_groups):
            for batch in parquet.iter_batches(batch_size=block_rows, row_groups=[group]):
                yield _arrow_to_table(batch)


def _arrow_to_table(batch):
    """An Arrow record batch as an astropy Table; nulls become masked values."""
    columns = {}
    for name, array in zip(batch.schema.names, batch.columns):
        values = array.to_numpy(zero_copy_only=False)
        if values.dtype.kind == "O" and not array.null_count:
            values = values.astype(str)  # Arrow strings: a unicode array, not objects
        if array.null_count:
            values = np.ma.masked_array(values, mask=array.is_null().to_numpy(
                zero_copy_only=False))
        columns[name] = values
    return Table(columns)
