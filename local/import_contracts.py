"""An import-linter contract type for a submodule of an external package.

import-linter sees an external package only as its top-level name (`google`),
so its `forbidden` contract cannot tell `google.cloud.firestore` from
`google.api_core`. This contract reads the import statements grimp recorded
and refuses the ones that name a forbidden submodule.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

import grimp
from importlinter import Contract, ContractCheck, fields, output


@dataclass(frozen=True)
class Violation:
    importer: str
    line_number: int
    line_contents: str


def imported_names(statement: str) -> list[str]:
    """Every dotted name an import statement brings in, e.g. "from a import b"
    → ["a.b"]. A statement grimp gives only in part (the first line of a
    parenthesised import) yields [] and is judged on its text instead."""
    try:
        [node] = ast.parse(statement.strip()).body
    except (SyntaxError, ValueError):
        return []
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [f"{node.module}.{alias.name}" for alias in node.names]
    return []


def names_forbidden(statement: str, forbidden: str) -> bool:
    """Whether the statement imports `forbidden` or anything whose name starts
    with it (`google.cloud.firestore` covers `google.cloud.firestore_v1`)."""
    names = imported_names(statement)
    if names:
        return any(name.startswith(forbidden) for name in names)
    return forbidden.rsplit(".", 1)[-1] in statement


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
        violations = [
            Violation(importer, detail["line_number"], detail["line_contents"])
            for importer in sorted(self._checked_modules(graph))
            if external in graph.find_modules_directly_imported_by(importer)
            for detail in graph.get_import_details(importer=importer, imported=external)
            if names_forbidden(detail["line_contents"], forbidden)
        ]
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def _checked_modules(self, graph: grimp.ImportGraph) -> set[str]:
        sources = [module.name for module in self._modules(self.source_modules)]
        allowed = [module.name for module in self._modules(self.allowed_modules)]
        return {
            module
            for module in graph.modules
            if _within(module, sources) and not _within(module, allowed)
        }

    @staticmethod
    def _modules(field_value: Any) -> list[Any]:
        return list(field_value or [])

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
