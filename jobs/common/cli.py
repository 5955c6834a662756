"""One runner for every job's command line: the options are parsed and checked before any Spark work, logging
is set up once, and each way a run can end is one exit code that Airflow, `make` and operators read alike.

    0  done
    1  failed (an unexpected error, a bug or the infrastructure: what failed, with its traceback)
    2  bad input (options, settings, source files, specs, a missing model or snapshot): one line, no traceback
    3  blocked (the run did its work and a gate refused the data; the job's report says so)
    4  busy (another run holds the same window; nothing was done)

A job's `main` names its parser, its work and its report, and which of its own errors are bad input:

    def main(argv=None) -> int:
        return run_cli(argv, parse_args, run, report, bad_input=(SpecError,))
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_BUSY = 0, 1, 2, 3, 4

log = logging.getLogger("jobs.cli")

A = TypeVar("A")
R = TypeVar("R")


def _settings_sections() -> dict[str, type]:
    """Settings section name -> its pydantic class (`churn` -> ChurnSettings), read off `Settings`."""
    from jobs.common import config

    return {
        name: typing.get_type_hints(getattr(config.Settings, name).func)["return"]
        for name, value in vars(config.Settings).items()
        if hasattr(value, "func")
    }


def check_sections(settings: Any, names: Sequence[str]) -> None:
    """Reads each named settings section now, so a wrong setting is exit 2 before any Spark work."""
    for name in names:
        getattr(settings, name)


def check_master(args: Any, settings: Any) -> None:
    """A job with a --master option: an unreachable standalone master is said now (naming the URL), not
    by Py4J minutes later. Under spark-submit the submitter's master wins and has been reached already."""
    from jobs.common.spark import check_master_reachable, check_master_url, under_spark_submit

    if hasattr(args, "master") and not under_spark_submit():
        check_master_reachable(check_master_url(args.master or settings.spark.master_url))


def describe_configuration_error(err: Exception) -> str | None:
    """One line for a wrong setting (`CHURN_SPEC: ...`), or None when `err` is not a settings error."""
    from pydantic import ValidationError

    from jobs.common.config import describe_settings_error

    if not isinstance(err, ValidationError):
        return None
    section = next((cls for cls in _settings_sections().values() if cls.__name__ == err.title), None)
    return describe_settings_error(err, section) if section is not None else None


def run_cli(
    argv: list[str] | None,
    parse: Callable[[list[str] | None], A],
    work: Callable[[A, Any], R],
    report: Callable[[R], int | None],
    *,
    bad_input: tuple[type[BaseException], ...] = (),
    busy: tuple[type[BaseException], ...] = (),
    sections: Sequence[str] = (),
) -> int:
    """Parses `argv` (argparse exits 2 on bad options), checks the named settings sections and the master,
    runs `work(args, settings)` and returns `report(result)` (None: done). Errors become exit codes as the
    module docstring says; nothing is swallowed silently: every path logs what happened."""
    from jobs.common.config import load_settings
    from jobs.common.logs import setup_logging
    from jobs.common.spark import MasterError

    args = parse(argv)
    setup_logging()
    settings = load_settings()
    try:
        check_sections(settings, sections)
        check_master(args, settings)
        result = work(args, settings)
    except (MasterError, *bad_input) as err:
        log.error("bad input: %s", err)
        return EXIT_BAD_INPUT
    except busy as err:
        log.error("run refused: %s", err)
        return EXIT_BUSY
    except Exception as err:
        if (line := describe_configuration_error(err)) is not None:
            log.error("configuration error: %s", line)
            return EXIT_BAD_INPUT
        log.error("run failed: %s: %s", type(err).__name__, err, exc_info=True)
        return EXIT_FAILED
    code = report(result)
    return EXIT_OK if code is None else code
