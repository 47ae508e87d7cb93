"""What every subcommand's `--help` shows beyond its own text (the defaults), and what it says
to an argument it does not know that looks like a config field (`ml_collections`' flag habit)."""

from __future__ import annotations

import argparse
import re

# `--config.train.num_steps=10`, `--train.num_steps 10` or a bare `train.num_steps=10`.
_FIELD_FLAG = re.compile(r"--(?:config\.)?(\w+(?:\.\w+)+)(?:=(.*))?", re.DOTALL)
_BARE_FIELD = re.compile(r"(\w+(?:\.\w+)+)=(.*)", re.DOTALL)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """argparse's help with each option's default appended, as `ArgumentDefaultsHelpFormatter`
    does, except for the defaults that say nothing: none, off (a flag) and empty."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not _says_something(action.default) or "%(default)" in text:
            return text
        return f"{text} (default: %(default)s)"


def _says_something(default: object) -> bool:
    return default not in (None, False, [], "", argparse.SUPPRESS)


def show_defaults(subparsers: argparse._SubParsersAction) -> None:
    """Makes every subcommand's `--help` show its defaults (set here, once, so that a new
    subcommand gets them without a line of its own)."""
    for parser in subparsers.choices.values():
        parser.formatter_class = DefaultsHelpFormatter
        for action in parser._actions:
            if action.help is None and _says_something(action.default):
                action.help = "(default: %(default)s)"  # argparse lists no help for an option without any


def unrecognized(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """argparse's message for arguments `parser` does not know, with the `--set` each one meant
    when it looks like a config field and `parser` takes `--set`."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    if not any("--set" in action.option_strings for action in parser._actions):
        return message
    meant = []
    for i, extra in enumerate(extras):
        flag, bare = _FIELD_FLAG.fullmatch(extra), _BARE_FIELD.fullmatch(extra)
        if flag and flag[2] is None and i + 1 < len(extras) and not extras[i + 1].startswith("-"):
            meant.append(f"--set {flag[1]}={extras[i + 1]}")  # `--config.x VALUE`
        elif flag or bare:
            field, value = (flag or bare)[1], (flag or bare)[2]
            meant.append(f"--set {field}={value if value is not None else 'VALUE'}")
    if meant:
        message += f". Config fields are set with --set FIELD=VALUE: {' '.join(meant)}"
    return message
