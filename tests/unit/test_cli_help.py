"""`bert-jax COMMAND --help` shows every default, and an argument written as an `ml_collections`
flag (`--config.train.num_steps=10`) or a bare `train.num_steps=10` is answered with the `--set`
it meant."""

from __future__ import annotations

import argparse

import pytest

from bert_jax.cli import build_parser, main


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return dict(parser._subparsers._group_actions[0].choices)


def test_every_subcommand_help_shows_its_defaults():
    for name, parser in _subcommands().items():
        text = " ".join(parser.format_help().split())  # unwrapped
        for action in parser._actions:
            if action.default not in (None, False, [], "", argparse.SUPPRESS):
                assert f"(default: {action.default})" in text, (name, action.dest, action.default)


@pytest.mark.parametrize("arguments, meant", [
    (["--config.train.num_steps=10"], "--set train.num_steps=10"),
    (["--config.train.num_steps", "10"], "--set train.num_steps=10"),
    (["train.num_steps=10"], "--set train.num_steps=10"),
    (["--optimizer.learning_rate=1e-4"], "--set optimizer.learning_rate=1e-4"),
])
def test_a_config_field_written_as_a_flag_is_answered_with_set(arguments, meant, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["pretrain", "--config", "bert_tiny", *arguments])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert f"unrecognized arguments: {' '.join(arguments)}" in error
    assert f"Config fields are set with --set FIELD=VALUE: {meant}" in error


def test_other_unknown_arguments_get_argparse_message_alone(capsys):
    with pytest.raises(SystemExit):
        main(["pretrain", "--config", "bert_tiny", "--no-such-flag"])
    error = capsys.readouterr().err
    assert "unrecognized arguments: --no-such-flag" in error and "--set" not in error.split("error:")[1]
