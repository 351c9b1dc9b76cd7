"""The `salova` command. Thin: each command parses its options and calls one library function.

Errors a user can cause (salova.errors.SalovaError) become one line on stderr and the error's exit code;
Ctrl-C exits 130. Tracebacks are shown only with SALOVA_DEBUG=1.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from salova import __version__
from salova.errors import SalovaError, UsageError
from salova_cli.common import flag_name

app = typer.Typer(
    name="salova",
    help="Make long videos answerable: index scenes, ask questions, get moments with timestamps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        typer.echo(f"salova {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log details to stderr."),
):
    """salova: Segment-Augmented Long Video Assistant (SALOVA, CVPR 2025)."""
    _setup_logging(verbose)


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (it may be replaced, e.g. by test capture)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def _setup_logging(verbose: bool) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    log = logging.getLogger("salova")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("salova: %(levelname)s: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    # transformers' own progress bars and warnings are noise on the command line. Read from the environment when
    # transformers is imported, so a command that never loads a model never imports it (0.5 s); a library caller
    # that imported it already gets the same settings directly.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def _register() -> None:
    from salova_cli import ask_cmd, clip_cmd, eval_cmd, index_cmd, library_cmd, transcript_cmd

    app.command("index")(index_cmd.index)
    app.command("status")(library_cmd.status)
    app.command("ls", help="Alias of `salova status`.")(library_cmd.status)
    app.command("rm")(library_cmd.rm)
    app.command("ask")(ask_cmd.ask)
    app.command("search")(ask_cmd.search)
    app.command("clip")(clip_cmd.clip)
    app.command("transcript")(transcript_cmd.transcript)
    app.add_typer(eval_cmd.app, name="eval")
    try:
        from salova_cli import train_cmd
    except ImportError:
        return
    app.command("train")(train_cmd.train)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning domain errors into one line and an exit code."""
    _register()
    try:
        rc = app(args=argv, standalone_mode=False)
    except SalovaError as exc:
        if os.environ.get("SALOVA_DEBUG"):
            raise
        message = exc.describe(flag_name) if isinstance(exc, UsageError) else str(exc)
        typer.echo(f"salova: error: {message}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("salova: interrupted", err=True)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("salova: aborted", err=True)
        return 130
    except Exception as exc:
        if _is_click_error(exc):  # usage mistakes: click's own message, with "did you mean" where it has one
            exc.show()
            return exc.exit_code
        raise
    return rc if isinstance(rc, int) else 0


def _is_click_error(exc: BaseException) -> bool:
    """A click usage error, whichever click raised it.

    typer 0.29+ raises its vendored copy (`typer._click.exceptions.*`), older typers raise `click.*`; both carry
    `exit_code` and `show`, so the mapping goes by that shape rather than by the class's module.
    """
    return isinstance(getattr(exc, "exit_code", None), int) and callable(getattr(exc, "show", None))


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
