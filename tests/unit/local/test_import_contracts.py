"""The import contract that keeps google.cloud.firestore inside the store and
platform layers, and the lint step that runs the contracts."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

from local import run_tests
from local.import_contracts import (
    ForbiddenExternalSubmoduleContract,
    imported_names,
    names_forbidden,
    statement_names,
)

FIRESTORE = "google.cloud.firestore"


@pytest.mark.parametrize(
    "statement",
    [
        "from google.cloud import firestore",
        "import google.cloud.firestore",
        "from google.cloud.firestore_v1.base_query import FieldFilter",
        "from google.cloud import pubsub_v1, firestore",
    ],
)
def test_an_import_of_firestore_is_forbidden(statement: str) -> None:
    assert names_forbidden(imported_names(statement), FIRESTORE)


@pytest.mark.parametrize(
    "statement",
    [
        "from google.api_core import exceptions as gexc",
        "from google.cloud import pubsub_v1",
        "from google.cloud import tasks_v2",
    ],
)
def test_other_google_imports_are_allowed(statement: str) -> None:
    assert not names_forbidden(imported_names(statement), FIRESTORE)


def test_a_parenthesised_import_is_read_whole_from_its_file(tmp_path: Path) -> None:
    # grimp records only the first line, "from google.cloud import (".
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(
        "import os\n\nfrom google.cloud import (\n    pubsub_v1,\n    firestore,\n)\n"
    )
    names = statement_names("pkg.mod", 3, "from google.cloud import (", tmp_path)
    assert names == ["google.cloud.pubsub_v1", "google.cloud.firestore"]
    assert names_forbidden(names, FIRESTORE)


def contract() -> ForbiddenExternalSubmoduleContract:
    return ForbiddenExternalSubmoduleContract(
        name="firestore in store",
        session_options={},
        contract_options={
            "source_modules": ["shared", "functions"],
            "allowed_modules": ["shared.store", "shared.platform"],
            "forbidden_module": FIRESTORE,
        },
    )


def graph_importing(imports: dict[str, str]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for importer, statement in imports.items():
        graph.add_import(
            importer=importer,
            imported="google",
            line_number=7,
            line_contents=statement,
        )
    return graph


def test_the_contract_is_kept_when_only_store_and_platform_use_firestore() -> None:
    graph = graph_importing(
        {
            "shared.store.messages": "from google.cloud import firestore",
            "shared.platform.firestore": "from google.cloud import firestore",
            "shared.delivery.sender": "from google.api_core import exceptions",
        }
    )
    assert contract().check(graph, verbose=False).kept


def test_the_contract_names_each_module_outside_them_that_uses_firestore() -> None:
    graph = graph_importing(
        {
            "shared.store.messages": "from google.cloud import firestore",
            "shared.api.users": "from google.cloud import firestore",
            "functions.api.main": "import google.cloud.firestore",
            "local.faults": "from google.cloud import firestore",
        }
    )
    check = contract().check(graph, verbose=False)
    assert not check.kept
    found = [(v.importer, v.line_number) for v in check.metadata["violations"]]
    assert found == [("functions.api.main", 7), ("shared.api.users", 7)]


def test_a_broken_import_contract_fails_the_lint_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[list[str]] = []

    def run(title: str, argv: list[str]) -> int:
        ran.append(argv)
        return 1 if title == "import contracts" else 0

    monkeypatch.setattr(run_tests, "run", run)
    assert run_tests.static_checks() == ["import contracts"]
    assert any(argv[0].endswith("lint-imports") for argv in ran)
