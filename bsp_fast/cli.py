"""``bsp-fast <command> [options]``: one entry point for every command module.

Commands: train, predict, evaluate, cv, motifs, explain, gradients — each is
``bsp_fast.<command>.main(argv) -> int``.

User mistakes raise :class:`UserError`; :func:`guard` turns them into one line on stderr and
exit status 2 (no traceback). :func:`guard` also loads the compiled modules before the command
starts, so a broken install fails at once with one line naming the module and how to build it
(never minutes later, never as a silent fall-back to a slow reference).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

COMMANDS = {
    "train": "train a model genome-wide (default: the built-in synthetic data set)",
    "predict": "score every bin of a genome (TSV, bigWig, bedGraph; narrowPeak of bins above a threshold)",
    "variants": "effects of VCF/BCF variants on binding (ref/alt probability, logit difference)",
    "evaluate": "score a predictions file against labels",
    "cv": "k-fold cross-validation on FASTA sequence sets",
    "motifs": "first-layer kernels as motifs and logos",
    "explain": "in-silico mutagenesis and per-base tracks",
    "gradients": "the vanishing-gradient study",
}


class UserError(Exception):
    """A user's mistake: reported as one line on stderr, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors become UserError (one line, exit 2, no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        raise UserError(f"{self.prog}: {message} (see --help)")


def guard(prog: str, fn: Callable[[], int], native: bool = True) -> int:
    """Run ``fn``; UserError -> one line on stderr and 2; SystemExit from --help -> its code.

    ``native``: load the compiled modules first (a missing one: one line, exit 2).
    """
    from bsp_fast import _native

    try:
        if native:
            _native.require()
        return int(fn() or 0)
    except _native.NativeModuleMissing as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        # a missing optional dependency that says how to install it (bsp_fast.interpret.MissingExtra)
        if not getattr(exc, "user_facing", False):
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except UserError as exc:
        msg = str(exc)
        print(msg if msg.startswith(prog) else f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # argparse --help / --version
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        lines = ["usage: bsp-fast <command> [options]", "", "commands:"]
        lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
        lines += ["", "'bsp-fast <command> --help' shows a command's options."]
        print("\n".join(lines))
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from bsp_fast import __version__

        print(f"bsp-fast {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"bsp-fast: error: unknown command {command!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"bsp_fast.{command}")
    except ImportError as exc:
        print(f"bsp-fast: error: command {command!r} is not available ({exc})", file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
