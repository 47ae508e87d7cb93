"""The README's Korean example, run as written on the Korean text `konlpy` ships, and checked
against `transformers`.

The commands are read from README.md itself (the bash block after "Korean, from scratch"), so the
test follows the README when it changes: `bert-jax vocab` and `bert-jax create-data` run with the
README's arguments, the model is the README's `pretrain` config and `--set`s, and the texts and
`--top-k` are its `fill-mask` line. Only the 3,000 training steps are left out (minutes on a CPU):
the model's parameters are random, which checks the plumbing as well, since the tokenizer and the
fill-mask output must agree with `transformers` whatever the weights.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import konlpy  # a pinned test dependency: missing, the test fails, not skips
import pytest
import transformers

from bert_jax.cli import main
from bert_jax.config.files import load_config
from bert_jax.config.validation import bert_config
from bert_jax.convert.hf_export import export_to_huggingface
from bert_jax.inference.fill_mask import FillMask
from input_pipeline.tokenizers.loading import load_tokenizer
from input_pipeline.vocabulary.wordpiece import ks_x_1001_hangul_syllables
from tests.support.export_fixtures import perturbed_params
from tests.support.pipeline_parity import assert_matches_pipeline

README = Path(__file__).resolve().parents[2] / "README.md"
KONLPY_CORPUS = Path(konlpy.__file__).parent / "data" / "corpus"


def readme_commands(section: str) -> dict[str, list[str]]:
    """The `bert-jax` commands of the first bash block after `section` in README.md, by
    subcommand, each as its argument list (line continuations joined, $K expanded and globbed)."""
    text = README.read_text(encoding="utf-8")
    start = text.index("```bash", text.index(section)) + len("```bash")
    block = text[start:text.index("```", start)].replace("\\\n", " ")
    commands = {}
    for line in filter(str.strip, block.splitlines()):
        program, subcommand, *args = shlex.split(line, comments=True)
        assert program == "bert-jax", line
        expanded = []
        for arg in args:
            if arg.startswith("$K/"):
                matches = sorted(KONLPY_CORPUS.glob(arg[len("$K/"):]))
                assert matches, f"README's {arg} matches no file under {KONLPY_CORPUS}"
                expanded.extend(str(m) for m in matches)
            else:
                expanded.append(arg)
        commands[subcommand] = expanded
    return commands


def option_values(args: list[str], option: str) -> list[str]:
    """Every value given to `option` in `args`."""
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == option]


def positional_after(args: list[str], option: str) -> list[str]:
    """The arguments after `option`'s value up to the next option: the fill-mask texts."""
    rest = args[args.index(option) + 2:]
    return rest[:next((i for i, arg in enumerate(rest) if arg.startswith("--")), len(rest))]


@pytest.fixture(scope="module")
def korean_example(tmp_path_factory):
    """The README's vocab and shards (made in a fresh directory, where its relative paths point),
    its model with random parameters, and that model's Hugging Face export."""
    commands = readme_commands("Korean, from scratch")
    directory = tmp_path_factory.mktemp("readme_korean")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        assert main(["vocab", *commands["vocab"]]) == 0
        assert main(["create-data", *commands["create-data"]]) == 0
        pretrain = commands["pretrain"]
        config = load_config(option_values(pretrain, "--config")[0], option_values(pretrain, "--set"))
        vocab_file = directory / config.data.vocab_file
    model_config = bert_config(config)
    params = perturbed_params(model_config)
    export = export_to_huggingface(params, model_config, vocab_file, config.data.do_lower_case,
                                   directory / "hf")
    tokenizer = load_tokenizer(str(vocab_file), do_lower_case=config.data.do_lower_case)
    return {"commands": commands, "directory": directory, "config": config, "vocab_file": vocab_file,
            "params": params, "model_config": model_config, "export": export, "tokenizer": tokenizer}


def test_the_korean_vocab_is_cased_and_holds_every_ks_x_1001_syllable(korean_example):
    vocab = korean_example["vocab_file"].read_text(encoding="utf-8").split("\n")
    assert set(ks_x_1001_hangul_syllables()) <= set(vocab)
    assert korean_example["config"].data.do_lower_case is False
    # The model vocab the README sets may be larger than the vocab file (padding), never smaller.
    assert len([t for t in vocab if t]) <= korean_example["model_config"].vocab_size
    assert any((korean_example["directory"] / "ko-shards").glob("*.tfrecord"))


def test_the_exported_tokenizer_gives_our_ids_for_the_korean_texts(korean_example):
    fill_mask_texts = positional_after(korean_example["commands"]["fill-mask"], "--model")
    assert fill_mask_texts and all("[MASK]" in t for t in fill_mask_texts)
    constitution = (KONLPY_CORPUS / "kolaw" / "constitution.txt").read_text(encoding="utf-8")
    texts = fill_mask_texts + [line for line in constitution.splitlines() if line.strip()][:40]
    theirs = transformers.AutoTokenizer.from_pretrained(korean_example["export"])
    ours = korean_example["tokenizer"]
    for text in texts:
        assert [ours.cls_id, *ours.encode(text), ours.sep_id] == theirs(text)["input_ids"], text
    # Cased: no syllable was split into jamo, and the syllables are in the vocab.
    assert ours.unk_id not in ours.encode(" ".join(fill_mask_texts))


def test_korean_fill_mask_matches_the_transformers_pipeline(korean_example):
    args = korean_example["commands"]["fill-mask"]
    texts = positional_after(args, "--model")
    top_k = int(option_values(args, "--top-k")[0])
    fill_mask = FillMask(korean_example["params"], korean_example["model_config"], korean_example["tokenizer"])
    ours = fill_mask(texts, top_k=top_k)
    pipeline = transformers.pipeline("fill-mask", model=str(korean_example["export"]), top_k=top_k)
    largest = assert_matches_pipeline(texts, ours, pipeline)
    print(f"README Korean fill-mask: max |score difference| vs the pipeline: {largest:.2e}")
