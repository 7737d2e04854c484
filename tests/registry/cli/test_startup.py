"""Start-up of the console script: lazy imports, --version everywhere, one-line failures.

No timing thresholds here (the machine is shared): start-up cost is asserted through what gets
imported, and measured in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from registry.cli.errors import masked_url
from registry.cli.main import COMMANDS, build_parser, chipreg_version, main
from tests.registry.cli.test_commands import chipreg

HEAVY = ("fastapi", "sqlalchemy", "uvicorn", "verifier", "agents", "httpx", "pydantic")


def _imported_after(argv: list[str]) -> list[str]:
    code = (
        "import sys\n"
        "from registry.cli.main import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith("MODULES "))
    return line.split()[1:]


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["admin", "--version"]])
def test_help_and_version_import_no_heavy_module(argv: list[str]) -> None:
    modules = _imported_after(argv)
    heavy = [m for m in modules if m.split(".")[0] in HEAVY]
    if argv[0] == "admin":
        # The selected command's module is imported (it defines the parser), nothing else.
        assert "registry.cli.admin" in modules
        assert "registry.cli.serve" not in modules and "agents" not in modules
    else:
        assert heavy == []
        assert not [
            m for m in modules if m.startswith("registry.cli.") and m != "registry.cli.main"
        ]


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found.extend(_subparsers(child))
    return found


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_and_subcommand_has_version(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parsers = _subparsers(build_parser([command]))
    assert len(parsers) > 1
    for parser in parsers:
        assert "--version" in parser._option_string_actions, parser.prog
    path = [p.prog.split()[1:] for p in parsers if len(p.prog.split()) > 1][-1]
    with pytest.raises(SystemExit) as exited:
        main([*path, "--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"chipreg {chipreg_version()}"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_one_line_help_in_main_is_the_commands_own(command: str) -> None:
    module_name, help_text = COMMANDS[command]
    sub = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module_name).add_parser(sub)
    (choice,) = sub._choices_actions
    assert choice.dest == command
    assert choice.help == help_text


def test_every_cli_module_with_a_parser_is_a_command() -> None:
    folder = Path(importlib.import_module("registry.cli").__file__ or "").parent
    with_parser = {
        f"registry.cli.{path.stem}"
        for path in folder.glob("*.py")
        if "def add_parser(" in path.read_text()
    }
    assert with_parser == {module for module, _ in COMMANDS.values()}


def test_version_from_the_console_script() -> None:
    run = chipreg("--version")
    assert run.returncode == 0
    assert run.stdout.strip() == f"chipreg {chipreg_version()}"


def test_a_bad_setting_is_one_line_on_stderr_without_its_value() -> None:
    run = chipreg(
        "verify", env={"CHIPREG_MAX_BATCH_REPORTS": "0", "CHIPREG_LOG_FORMAT": "hunter2-xml"}
    )
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert sorted(lines) == [
        "chipreg: invalid CHIPREG_LOG_FORMAT: Input should be 'text' or 'json'",
        "chipreg: invalid CHIPREG_MAX_BATCH_REPORTS: Input should be greater than or equal to 1",
    ]
    assert "hunter2" not in run.stderr


def test_production_refusal_is_one_line(tmp_path: Path) -> None:
    run = chipreg(
        "admin",
        "migrate",
        env={
            "CHIPREG_ENVIRONMENT": "production",
            "CHIPREG_DATABASE_URL": "postgresql://chipreg:hunter2@127.0.0.1:1/x",
            "CHIPREG_LOG_KEY_FILE": str(tmp_path / "missing"),
        },
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"chipreg: invalid settings: CHIPREG_LOG_KEY_FILE {tmp_path / 'missing'} does not exist"
        " (create it once with `chipreg admin init`)"
    )


def test_an_unreachable_database_is_one_line_with_the_password_masked() -> None:
    url = "postgresql+psycopg://chipreg:hunter2@127.0.0.1:1/chipreg"
    for argv in (
        ["admin", "migrate"],
        ["verify"],
        ["admin", "create-token", "--name", "x", "--role", "admin"],
    ):
        run = chipreg(*argv, env={"CHIPREG_DATABASE_URL": url})
        assert run.returncode == 1, run.stderr
        assert "Traceback" not in run.stderr and "hunter2" not in run.stderr + run.stdout
        (line,) = run.stderr.strip().splitlines()
        assert line.startswith(
            f"chipreg {argv[0]}: cannot use the database at "
            "postgresql+psycopg://chipreg:***@127.0.0.1:1/chipreg: "
        )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("not a url", "Could not parse"),
        ("postgres://chipreg:hunter2@db/chipreg", "Can't load plugin"),
    ],
)
def test_a_bad_database_url_is_one_line(url: str, why: str) -> None:
    run = chipreg("admin", "migrate", env={"CHIPREG_DATABASE_URL": url})
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and "hunter2" not in run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("chipreg admin: invalid CHIPREG_DATABASE_URL ") and why in line


def test_masked_url() -> None:
    assert masked_url("postgresql://u:p%40ss@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert masked_url("sqlite:///var/x.sqlite3") == "sqlite:///var/x.sqlite3"
    assert masked_url("::bad://u:secret@h") == "::bad://u:***@h"


def test_migrate_never_prints_the_password(database_url: str) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        # The throwaway server trusts local connections, so any password is accepted.
        url = url.set(password="hunter2")
    rendered = url.render_as_string(hide_password=False)
    run = chipreg("admin", "migrate", env={"CHIPREG_DATABASE_URL": rendered})
    assert run.returncode == 0, run.stderr
    assert "hunter2" not in run.stdout + run.stderr
    assert run.stdout.strip() == f"schema is up to date on {masked_url(rendered)}"
    if url.password:
        assert ":***@" in run.stdout


#: Needed only by some routes (exports, bundles, verifier runs), by background work (webhook
#: delivery, witnesses) or by a migration: never on the path from ``chipreg serve`` to serving.
NOT_FOR_SERVING = ("alembic", "httpx", "httpcore", "audit", "verifier", "agents", "wsproto")


def test_a_serve_parent_imports_nothing_only_some_routes_need(
    database_url: str, tmp_path: Path
) -> None:
    """What ``chipreg serve --workers N`` does before it forks, on a current schema: check the
    schema, load the log key, import and build the app. Each module above was seconds of the
    restart after kill -9 on a loaded host (docs/benchmarks.md)."""
    env = {
        **os.environ,
        "CHIPREG_DATABASE_URL": database_url,
        "CHIPREG_LOG_KEY_FILE": str(tmp_path / "log-key"),
        "CHIPREG_ENVIRONMENT": "development",
    }
    first = chipreg("admin", "migrate", env=env)  # brings the schema to head (with Alembic)
    assert first.returncode == 0, first.stderr
    code = (
        "import sys\n"
        "from registry.settings import Settings\n"
        "from registry.cli.serve import _prepare\n"
        "_prepare(Settings())\n"
        "import registry.prefork\n"
        "from registry.api.app import create_worker_app\n"
        "create_worker_app()\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith("MODULES "))
    modules = line.split()[1:]
    assert "registry.api.app" in modules and "registry.db.models" in modules
    assert [m for m in modules if m.split(".")[0] in NOT_FOR_SERVING] == []
