"""Scale run: a simulated Gaia-DR3-sized RRab catalogue through the ``rrlyrae-feh`` CLI.

Three steps, each a sub-command::

    python benchmarks/scale_run.py simulate --n-stars 270000 --dir runs/scale
    python benchmarks/scale_run.py run --dir runs/scale --chunk-size 10000
    python benchmarks/scale_run.py check --dir runs/scale --sample 500
    python benchmarks/scale_run.py resume --dir runs/scale --kill-after 3

``simulate`` writes the epoch photometry (long layout, G band; Parquet, one row
group per block of stars) and a ``vari_rrlyrae``-like table, simulating blocks
of stars in parallel processes. ``run`` runs the CLI on them as a subprocess
and records its wall time, its peak resident memory (``ru_maxrss`` of the
child) and stars/s in ``DIR/scale_run.json``. ``check`` compares the CLI's
output with the in-memory API (`rrlyrae_metallicity.add_feh` on the light
curves of a random sample of stars) and adds the result to the same file.
``resume`` kills (SIGKILL) a second CLI run once some chunks are committed,
resumes it with ``--resume``, counts the chunks reused and recomputed, and
compares its output with that of ``run``.

The light curves are SIMULATED (`rrlyrae_metallicity.simulate`), not Gaia data.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

# Stars simulated per task (and Parquet row group).
_BLOCK = 5000
_PERIOD_COLUMNS = ("source_id", "pf", "epoch_g", "peak_to_peak_g", "num_clean_epochs_g",
                   "best_classification", "feh_simulated")


def _paths(directory):
    directory = Path(directory)
    return (directory / "epoch_photometry.parquet", directory / "vari_rrlyrae.parquet",
            directory / "stars_feh.fits", directory / "scale_run.json")


def _simulate_block(args):
    """Epoch photometry of one block of stars, as a dict of plain arrays."""
    from rrlyrae_metallicity import simulate

    stars, seed = args
    table = simulate.simulate_epoch_photometry(stars, seed=seed, include_bp_rp=False)
    return {name: np.asarray(table[name]) for name in table.colnames}


def simulate_catalogue(n_stars, directory, *, seed=2024, workers=2):
    """Write ``n_stars`` simulated stars' epoch photometry and periods under ``directory``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rrlyrae_metallicity import simulate

    photometry_path, periods_path, _, _ = _paths(directory)
    photometry_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    stars = simulate.simulate_stars(n_stars, seed=seed)
    stars[list(_PERIOD_COLUMNS)].write(periods_path, format="parquet", overwrite=True)
    tasks = [(stars[i:i + _BLOCK], seed + 1 + i // _BLOCK) for i in range(0, n_stars, _BLOCK)]
    tmp = photometry_path.with_suffix(".parquet.tmp")
    writer = None
    with ProcessPoolExecutor(workers) as pool:
        for k, block in enumerate(pool.map(_simulate_block, tasks)):
            batch = pa.table(block)
            writer = writer or pq.ParquetWriter(tmp, batch.schema)
            writer.write_table(batch)
            print(f"simulated {min((k + 1) * _BLOCK, n_stars)} of {n_stars} stars "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    writer.close()
    os.replace(tmp, photometry_path)
    return time.perf_counter() - start


def run_cli(directory, *, chunk_size, extra=()):
    """Run ``rrlyrae-feh predict`` on the catalogue; return wall time and peak RSS of the child."""
    photometry_path, periods_path, output, _ = _paths(directory)
    command = [sys.executable, "-m", "rrlyrae_metallicity.cli", "predict", str(photometry_path),
               "--periods", str(periods_path), "-o", str(output), "--chunk-size", str(chunk_size),
               *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    # ru_maxrss of the children: the peak resident set of the CLI process (kB on Linux).
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"command": " ".join(command), "wall_s": wall, "peak_rss_mb": peak_kb / 1024,
            "commit": _commit(), "cpu_count": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0]}


def _commit():
    """The package's commit, marked ``-dirty`` when its files differ from it."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              check=False).stdout.strip()

    dirty = git("status", "--porcelain", "--", "rrlyrae_metallicity")
    return git("rev-parse", "--short", "HEAD") + ("-dirty" if dirty else "")


def check_sample(directory, *, sample, seed=0):
    """Compare the CLI output with `add_feh` on a random sample of stars."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from astropy.table import Table

    from rrlyrae_metallicity import add_feh
    from rrlyrae_metallicity.gaia import read_epoch_photometry, read_rrlyrae_parameters

    photometry_path, periods_path, output, _ = _paths(directory)
    result = Table.read(output)
    stars = read_rrlyrae_parameters(periods_path)
    rows = np.sort(np.random.default_rng(seed).choice(len(stars), sample, replace=False))
    ids = stars["source_id"][rows]
    photometry = pq.read_table(photometry_path,
                               filters=pc.field("source_id").isin(np.asarray(ids)))
    expected = add_feh(stars[rows], read_epoch_photometry(Table(photometry.to_pydict())))
    got = result[rows]
    same_ids = bool(np.array_equal(np.asarray(got["source_id"]), np.asarray(ids)))
    same_status = bool(np.array_equal(np.asarray(got["feh_status"]).astype(str),
                                      np.asarray(expected["feh_status"]).astype(str)))
    diff = np.abs(np.asarray(got["feh_phot"], float) - np.asarray(expected["feh_phot"], float))
    nan_match = bool(np.array_equal(np.isnan(np.asarray(got["feh_phot"], float)),
                                    np.isnan(np.asarray(expected["feh_phot"], float))))
    return {"sample": int(sample), "same_source_ids_in_order": same_ids,
            "same_status": same_status, "same_nan": nan_match,
            "max_abs_feh_difference_dex": float(np.nanmax(diff)) if np.isfinite(diff).any()
            else 0.0,
            "n_rows": len(result), "n_ok": int((result["feh_status"] == "ok").sum())}


def kill_and_resume(directory, *, chunk_size, kill_after):
    """SIGKILL the CLI once ``kill_after`` chunks are committed, resume it, compare with ``run``."""
    import signal

    from astropy.table import Table

    photometry_path, periods_path, reference, _ = _paths(directory)
    output = reference.with_name("stars_feh_resumed.fits")
    parts = Path(f"{output}.parts")
    command = [sys.executable, "-m", "rrlyrae_metallicity.cli", "predict", str(photometry_path),
               "--periods", str(periods_path), "-o", str(output), "--chunk-size", str(chunk_size)]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    while len(list(parts.glob("chunk-*.npz"))) < kill_after:
        if process.poll() is not None:
            raise RuntimeError("the run ended before it could be killed")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    n_done = len(list(parts.glob("chunk-*.npz")))
    start = time.perf_counter()
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    got, want = Table.read(output), Table.read(reference)
    same = all(np.array_equal(np.asarray(got[name]), np.asarray(want[name]), equal_nan=True)
               if got[name].dtype.kind == "f" else list(got[name]) == list(want[name])
               for name in want.colnames)
    return {"chunks_done_when_killed": n_done,
            "chunks_reused": resumed.stderr.count("done by an earlier run, reused"),
            "chunks_predicted_after_resume": resumed.stderr.count("sources done in"),
            "resume_wall_s": seconds, "identical_to_uninterrupted_run": bool(same)}


def _update(path, **entries):
    record = json.loads(path.read_text()) if path.exists() else {}
    record.update(entries)
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(entries, indent=1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    simulate = sub.add_parser("simulate", help="write the simulated catalogue")
    simulate.add_argument("--n-stars", type=int, default=270_000)
    simulate.add_argument("--workers", type=int, default=2)
    run = sub.add_parser("run", help="run the CLI on it, timing it")
    run.add_argument("--chunk-size", type=int, default=10_000)
    check = sub.add_parser("check", help="compare the output with add_feh on a sample")
    check.add_argument("--sample", type=int, default=500)
    resume = sub.add_parser("resume", help="kill a run after some chunks, resume it, compare "
                                           "with the output of 'run'")
    resume.add_argument("--chunk-size", type=int, default=10_000)
    resume.add_argument("--kill-after", type=int, default=1, help="chunks committed first")
    for step in (simulate, run, check, resume):
        step.add_argument("--dir", default="runs/scale", help="folder of the catalogue")
    args = parser.parse_args(argv)
    record = _paths(args.dir)[3]
    if args.step == "simulate":
        seconds = simulate_catalogue(args.n_stars, args.dir, workers=args.workers)
        _update(record, simulate={"n_stars": args.n_stars, "wall_s": seconds,
                                  "workers": args.workers})
    elif args.step == "run":
        timing = run_cli(args.dir, chunk_size=args.chunk_size)
        n_stars = json.loads(record.read_text())["simulate"]["n_stars"]
        timing["stars_per_s"] = n_stars / timing["wall_s"]
        timing["chunk_size"] = args.chunk_size
        _update(record, run=timing)
    elif args.step == "check":
        _update(record, check=check_sample(args.dir, sample=args.sample))
    else:
        _update(record, resume=kill_and_resume(args.dir, chunk_size=args.chunk_size,
                                               kill_after=args.kill_after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
