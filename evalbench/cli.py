"""The `evalbench` command line: main() dispatches to one module per command group (cli_run, cli_results,
cli_data, cli_cache); the grammar is in cli_args."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from .errors import EvalbenchError, describe_exception
from .cli_args import add_debug_flag, build_parser
from .cli_cache import cmd_cache
from .cli_data import cmd_data, cmd_suites, cmd_task, cmd_tasks
from .cli_results import cmd_compare, cmd_leaderboard, cmd_rescore
from .cli_run import cmd_run


def _report(exc: BaseException, err, debug: bool, line: str) -> None:
    """One line on stderr; with --debug, the traceback (with its causes) first."""
    if debug:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    from rich.text import Text

    head, _, rest = line.partition(" ")
    err.print(Text.assemble((head, "bold red"), " ", rest), highlight=False, soft_wrap=True)


def _os_error_line(exc: OSError) -> str:
    """An environment problem (a full disk, a permission, a vanished file) as one line naming the path."""
    from .errors import is_no_space

    where = f": {exc.filename}" if exc.filename else ""
    if is_no_space(exc) and exc.filename:
        from .errors import disk_full

        return f"error: {disk_full(Path(exc.filename).parent, None, f'writing {Path(exc.filename).name}')}"
    fix = {PermissionError: "check its permissions", FileNotFoundError: "check the path",
           IsADirectoryError: "pass a file", NotADirectoryError: "a file stands where a directory should be"}.get(
        type(exc), "check the path, its permissions and the disk")
    return f"error: {exc.strerror or exc}{where} ({type(exc).__name__}); {fix}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    from rich.console import Console

    parser = build_parser()
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    # piped or redirected output: wide enough that tables never cut names (a terminal keeps its width)
    console = Console(stderr=False, width=None if sys.stdout.isatty() else 240)
    err = Console(stderr=True)
    handlers = {"run": cmd_run, "leaderboard": cmd_leaderboard, "tasks": cmd_tasks, "suites": cmd_suites, "data": cmd_data,
                "compare": cmd_compare, "rescore": cmd_rescore, "task": cmd_task, "cache": cmd_cache}
    try:
        return handlers[args.command](args, console)
    except EvalbenchError as exc:
        _report(exc, err, args.debug, f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        err.print("interrupted: finished results and cached features are kept; rerun the same command to resume")
        return 130
    except BrokenPipeError:  # `evalbench tasks --json | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return 0
    except OSError as exc:
        _report(exc, err, args.debug, _os_error_line(exc))
        return 2
    except Exception as exc:  # a bug (ours or a library's): one line, the traceback on request
        _report(exc, err, args.debug, f"error: internal error {describe_exception(exc)}; rerun with --debug for the "
                "traceback and report it at the evalbench issue tracker")
        return 1
