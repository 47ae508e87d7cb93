"""`bert-jax encode --help` offers every pooling the encoder has. The command itself, against
`transformers`, on the trained tiny model: tests/integration/test_inference.py."""

from __future__ import annotations

import pytest

from bert_jax.cli import main
from bert_jax.inference.encode import POOLINGS


def test_encode_command_line_offers_every_pooling(capsys):
    with pytest.raises(SystemExit):
        main(["encode", "--help"])
    assert "--pooling {" + ",".join(POOLINGS) + "}" in capsys.readouterr().out
