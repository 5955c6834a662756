"""The one CLI runner: each way a run ends is one exit code and one log line; every entrypoint uses it."""

from __future__ import annotations

import argparse
import ast
import logging
import socket
import time
from pathlib import Path

import pytest

from jobs.common.cli import EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_BUSY, EXIT_FAILED, EXIT_OK, run_cli
from jobs.common.config import PROJECT_ROOT


class Refused(Exception):
    pass


class Busy(Exception):
    pass


def _parse(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--master")
    parser.add_argument("--outcome", default="done")
    return parser.parse_args(argv)


def _work(args, settings):
    if args.outcome == "refused":
        raise Refused("the spec names no model")
    if args.outcome == "busy":
        raise Busy("the window is held by run 42")
    if args.outcome == "bug":
        raise ZeroDivisionError("division by zero")
    return args.outcome


def _report(outcome):
    return EXIT_BLOCKED if outcome == "blocked" else None


def _run(argv):
    return run_cli(argv, _parse, _work, _report, bad_input=(Refused,), busy=(Busy,))


@pytest.mark.parametrize(
    ("outcome", "code", "line"),
    [
        ("done", EXIT_OK, None),
        ("blocked", EXIT_BLOCKED, None),
        ("refused", EXIT_BAD_INPUT, "bad input: the spec names no model"),
        ("busy", EXIT_BUSY, "run refused: the window is held by run 42"),
        ("bug", EXIT_FAILED, "run failed: ZeroDivisionError: division by zero"),
    ],
)
def test_each_ending_is_one_exit_code_and_says_what_happened(outcome, code, line, caplog):
    with caplog.at_level(logging.INFO):
        assert _run(["--master", "local[2]", "--outcome", outcome]) == code
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    if line is None:
        assert errors == []
        return
    assert [r.getMessage() for r in errors] == [line]
    # only an unexpected failure carries its traceback: a refusal is the user's to fix, not a bug
    assert (errors[0].exc_info is not None) == (code == EXIT_FAILED)


def test_a_wrong_setting_is_one_configuration_line_before_the_work(monkeypatch, caplog):
    monkeypatch.setenv("CRYPTO_DATE_FORMATS", "yyyy-MM")
    called = []
    code = run_cli(
        ["--master", "local[2]"], _parse, lambda a, s: called.append(a), _report, sections=("crypto",)
    )
    assert code == EXIT_BAD_INPUT and called == []
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.startswith("configuration error: CRYPTO_DATE_FORMATS: unsupported date format 'yyyy-MM'")


def test_a_settings_error_met_during_the_work_is_named_as_the_user_sets_it(monkeypatch, caplog):
    monkeypatch.setenv("CRYPTO_DATE_FORMATS", "yyyy-MM")
    code = run_cli([], _parse, lambda a, s: s.crypto, _report)
    assert code == EXIT_BAD_INPUT
    assert "configuration error: CRYPTO_DATE_FORMATS" in caplog.text


def test_an_unreachable_master_is_bad_input_naming_the_url_before_the_work(caplog):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    called = []
    began = time.monotonic()
    code = run_cli(["--master", f"spark://127.0.0.1:{port}"], _parse, lambda a, s: called.append(a), _report)
    assert code == EXIT_BAD_INPUT and called == []
    assert time.monotonic() - began < 30
    assert f"spark://127.0.0.1:{port}" in caplog.text


def test_a_malformed_master_is_bad_input(caplog):
    assert run_cli(["--master", "local[abc]"], _parse, _work, _report) == EXIT_BAD_INPUT
    assert "--master must be local" in caplog.text


def _entrypoints() -> list[Path]:
    return sorted(
        p
        for p in (PROJECT_ROOT / "jobs").rglob("*.py")
        if any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in ast.parse(p.read_text()).body)
    )


def test_every_entrypoint_main_is_the_runner():
    """No hand-rolled main: each parses, checks and maps exits through run_cli."""
    mains = _entrypoints()
    assert len(mains) >= 12, mains
    for path in mains:
        tree = ast.parse(path.read_text())
        (main,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
        calls = [
            n.func.id for n in ast.walk(main) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        ]
        assert "run_cli" in calls, (
            f"{path.relative_to(PROJECT_ROOT)}: main does not use jobs.common.cli.run_cli"
        )
        assert not any(isinstance(n, ast.Try) for n in ast.walk(main)), f"{path}: main maps exceptions itself"
