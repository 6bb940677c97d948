"""An import-linter contract type for a submodule of an external package.

import-linter sees an external package only as its top-level name (`google`),
so its `forbidden` contract cannot tell `google.cloud.firestore` from
`google.api_core`. This contract reads the import statements grimp recorded
and refuses the ones that name a forbidden submodule.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grimp
from importlinter import Contract, ContractCheck, fields, output
from importlinter.domain.imports import Module


@dataclass(frozen=True)
class Violation:
    importer: str
    line_number: int
    line_contents: str


def imported_names(statement: str) -> list[str]:
    """Every dotted name an import statement brings in: "from a import b" →
    ["a.b"]; [] for text that is not one whole import statement."""
    try:
        [node] = ast.parse(statement.strip()).body
    except (SyntaxError, ValueError):
        return []
    return names_of(node)


def names_of(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [f"{node.module}.{alias.name}" for alias in node.names]
    return []


def source_path(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def statement_names(
    module: str, line_number: int, first_line: str, root: Path
) -> list[str]:
    """The names imported by the statement at `line_number` of `module`. grimp
    records only a statement's first line ("from google.cloud import ("), so a
    statement that does not parse alone is read whole from the source file."""
    names = imported_names(first_line)
    path = None if names else source_path(module, root)
    if path is None:
        return names
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.stmt) and node.lineno == line_number
        for name in names_of(node)
    ]


def names_forbidden(names: list[str], forbidden: str) -> bool:
    """Whether any name is `forbidden` or starts with it (`google.cloud.firestore`
    covers `google.cloud.firestore_v1`)."""
    return any(name.startswith(forbidden) for name in names)


class ForbiddenExternalSubmoduleContract(Contract):
    """Modules under `source_modules`, except those under `allowed_modules`,
    may not import `forbidden_module` (a dotted name inside an external
    package)."""

    type_name = "forbidden_external_submodule"

    source_modules = fields.ListField(subfield=fields.ModuleField())
    allowed_modules = fields.ListField(subfield=fields.ModuleField(), required=False)
    forbidden_module = fields.StringField()

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        forbidden = str(self.forbidden_module)
        external = forbidden.split(".", 1)[0]
        root = Path.cwd()  # lint-imports runs from the repository root
        violations = [
            Violation(importer, detail["line_number"], detail["line_contents"])
            for importer in sorted(self._checked_modules(graph))
            if external in graph.find_modules_directly_imported_by(importer)
            for detail in graph.get_import_details(importer=importer, imported=external)
            if names_forbidden(
                statement_names(
                    importer, detail["line_number"], detail["line_contents"], root
                ),
                forbidden,
            )
        ]
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def _checked_modules(self, graph: grimp.ImportGraph) -> set[str]:
        sources = _module_names(self.source_modules)
        allowed = _module_names(self.allowed_modules)
        return {
            module
            for module in graph.modules
            if _within(module, sources) and not _within(module, allowed)
        }

    def render_broken_contract(self, check: ContractCheck) -> None:
        for violation in check.metadata["violations"]:
            output.print_error(
                f"{violation.importer} imports {self.forbidden_module}"
                f" (l.{violation.line_number}: {violation.line_contents.strip()})",
                bold=False,
            )
        output.new_line()


def _within(module: str, packages: list[str]) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def _module_names(field_value: object) -> list[str]:
    # A field holds its parsed value once the contract is built.
    return [module.name for module in cast("list[Module] | None", field_value) or []]
