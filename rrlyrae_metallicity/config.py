"""Settings users may change: the default model, ONNX Runtime providers, threads.

Set them for a session, or for a block of code, the astropy way::

    from rrlyrae_metallicity import conf
    conf.default_model = "gru_inception"
    with conf.set_temp("threads", 1):
        ...

or once for good in ``~/.astropy/config/rrlyrae_metallicity.cfg`` (section
``[config]``).
"""

import os

from astropy import config as _config

__all__ = ["Conf", "conf", "cpu_threads"]


class Conf(_config.ConfigNamespace):
    """Configuration parameters of `rrlyrae_metallicity`."""

    default_model = _config.ConfigItem(
        "",
        "Model used by model='default'; empty for the one the package marks as its default "
        "(see rrlyrae_metallicity.available_models()).",
        cfgtype="string",
    )
    providers = _config.ConfigItem(
        [],
        "ONNX Runtime execution providers, most preferred first, e.g. "
        "['CPUExecutionProvider']; empty for CUDA when ONNX Runtime offers it, else the CPU.",
        cfgtype="string_list",
    )
    threads = _config.ConfigItem(
        0,
        "CPU threads running the model's members at once; 0 for the first number of "
        "OMP_NUM_THREADS when it is a positive whole number, else the cores this process "
        "may use.",
        cfgtype="integer",
    )


conf = Conf()


def cpu_threads():
    """Threads for the model on the CPU, from `conf` or the environment; at least 1.

    ``OMP_NUM_THREADS`` may hold a list for nested levels (``"4,2"``): its
    first number counts. Anything that is not a positive number is ignored,
    so that a setting meant for another program never stops a prediction.
    """
    if conf.threads > 0:
        return int(conf.threads)
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if first.isdigit() and int(first) > 0:
        return int(first)
    return _usable_cores()


def _usable_cores():
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
