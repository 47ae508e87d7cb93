"""The import rules of docs/architecture.md hold: each package imports only the layers below it, no
module cycle anywhere, and `input_pipeline` never imports `bert_jax` (import-linter's contracts in
pyproject.toml, checked on the source without importing it)."""

from pathlib import Path

from importlinter import configuration
from importlinter.application import use_cases
from importlinter.application.user_options import UserOptions

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _report():
    # import-linter's own entry point prints through a console that pytest's capture closes; its
    # use cases give the same report as data.
    configuration.configure()
    use_cases._register_built_in_contract_types()
    options: UserOptions = use_cases.read_user_options(str(PYPROJECT))
    return use_cases.create_report(options, cache_dir=None)


def test_the_import_contracts_hold():
    report = _report()
    results = {contract.name: (check.kept, check.metadata) for contract, check in report.get_contracts_and_checks()}
    broken = {name: metadata for name, (kept, metadata) in results.items() if not kept}
    assert not broken, "broken import contracts (run `lint-imports` for the details):\n" + "\n".join(
        f"- {name}: {metadata}" for name, metadata in broken.items())
    assert len(results) == 4
