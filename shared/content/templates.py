"""Liquid message templates: compile once per process, render per recipient.

A message must never go out with a hole in it. Rendering therefore reports every
variable that came out empty or undefined where no `default` filter covers it, and
the caller skips that message with `missing_variable`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TextIO, cast

from liquid import Environment, Mode, RenderContext, Undefined
from liquid.ast import Node
from liquid.builtin.expressions import FilteredExpression, Path
from liquid.builtin.expressions.primitive import IntegerLiteral, RangeLiteral
from liquid.builtin.output import Output, OutputNode
from liquid.builtin.tags.echo_tag import EchoNode, EchoTag
from liquid.exceptions import LiquidError, ResourceLimitError
from liquid.expression import Expression
from liquid.static_analysis import TemplateAnalysis
from liquid.stringify import to_liquid_string
from liquid.template import BoundTemplate
from liquid.token import Token

# The channel is a stored field of the template, so its vocabulary lives with
# the store. Named here too only for shared.api.templates, which imports it from
# here (helper E's file in issue #19): drop this line once it imports the store.

COMPILED_TEMPLATE_CACHE_SIZE = 512

# Covers the variables to its left: a template author who wrote a fallback has
# decided that an empty value is fine.
DEFAULT_FILTER = "default"

# Names Liquid resolves by itself; a template using them needs nothing from us.
LIQUID_BUILTIN_NAMES = frozenset({"now", "today"})

# Both read other templates through a loader; a message template stands alone.
DISALLOWED_TAGS = ("include", "render")


class TemplateSyntaxError(ValueError):
    """The template does not parse, or uses a filter that does not exist."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


class TemplateRenderError(ValueError):
    """Rendering failed: a filter error or a resource limit was reached."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RenderResult:
    body: str
    missing_variables: list[str]


@dataclass
class _RenderAudit:
    """What one render found missing, shared with the nodes through a ContextVar."""

    missing: set[str] = field(default_factory=set)
    # Undefined values stringified while the current output statement evaluates;
    # None between statements, so that `assign` and `capture` work is not counted.
    stringified: list[Undefined] | None = None


_current_audit: ContextVar[_RenderAudit | None] = ContextVar(
    "current_render_audit", default=None
)


class _RecordingUndefined(Undefined):
    """Renders as "" like Liquid's default, and tells the audit it was printed."""

    __slots__ = ()

    def __str__(self) -> str:
        audit = _current_audit.get()
        if audit is not None and audit.stringified is not None:
            audit.stringified.append(self)
        return ""


def _paths_in(expression: Expression) -> Iterator[Path]:
    if isinstance(expression, Path):
        yield expression
    for child in expression.children():
        yield from _paths_in(child)


@dataclass(frozen=True)
class _StatementVariables:
    """The variables of one output statement, worked out once at parse time."""

    paths_by_token: dict[Token, str]
    defaulted: frozenset[Token]
    has_default: bool

    @classmethod
    def of(cls, expression: Expression) -> _StatementVariables:
        paths_by_token = {path.token: str(path) for path in _paths_in(expression)}
        if not isinstance(expression, FilteredExpression) or not expression.filters:
            return cls(paths_by_token, frozenset(), has_default=False)
        filters = expression.filters
        default_positions = [
            position
            for position, filter_ in enumerate(filters)
            if filter_.name == DEFAULT_FILTER
        ]
        if not default_positions:
            return cls(paths_by_token, frozenset(), has_default=False)
        # Arguments of the last `default` and of later filters stay uncovered:
        # `{{ name | default: nickname }}` still has a hole when both are empty.
        covered = [expression.left]
        for filter_ in filters[: default_positions[-1]]:
            covered.extend(filter_.children())
        defaulted = frozenset(
            path.token for part in covered for path in _paths_in(part)
        )
        return cls(paths_by_token, defaulted, has_default=True)

    def _path_of(self, undefined: Undefined) -> str:
        # An undefined carries only its root name; its token finds the full path.
        if undefined.token is None:
            return undefined.name
        return self.paths_by_token.get(undefined.token, undefined.name)

    def missing(self, stringified: list[Undefined], text: str) -> set[str]:
        found = {
            self._path_of(undefined)
            for undefined in stringified
            if undefined.token not in self.defaulted
        }
        if not found and not self.has_default and not text.strip():
            # Defined but still blank, e.g. an empty list joined.
            found.update(self.paths_by_token.values())
        return found


class _AuditedOutputNode(OutputNode):
    """An output statement that reports the variables it left empty."""

    __slots__ = ("variables",)

    def __init__(self, token: Token, expression: Expression) -> None:
        super().__init__(token, expression)
        self.variables = _StatementVariables.of(expression)

    def render_to_output(self, context: RenderContext, buffer: TextIO) -> int:
        audit = _current_audit.get()
        if audit is None:
            return super().render_to_output(context, buffer)
        audit.stringified = []
        try:
            value = self.expression.evaluate(context)
            text = to_liquid_string(value, context.autoescape)
            stringified = audit.stringified
        finally:
            audit.stringified = None
        audit.missing.update(self.variables.missing(stringified, text))
        return buffer.write(text)


class _AuditedEchoNode(_AuditedOutputNode, EchoNode):
    __slots__ = ()


class _AuditedOutput(Output):
    node_class = _AuditedOutputNode


class _AuditedEcho(EchoTag):
    node_class = _AuditedEchoNode


class _MessageEnvironment(Environment):
    """Sandboxed: no loader-backed tags, and bounded work per render.

    Limits are generous for a message of at most a few thousand characters;
    content validation enforces the real length limit after rendering.
    """

    block_nesting_limit = 10
    context_depth_limit = 10
    loop_iteration_limit = 1_000
    local_namespace_limit = 64 * 1024
    output_stream_limit = 64 * 1024

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=False)
        for name in DISALLOWED_TAGS:
            del self.tags[name]
        self.add_tag(_AuditedOutput)
        self.add_tag(_AuditedEcho)


_environment = _MessageEnvironment(
    tolerance=Mode.STRICT,
    undefined=_RecordingUndefined,
    strict_filters=True,
    autoescape=False,
)


class RangeLimitError(ResourceLimitError):
    """A range literal spans more items than one render may handle."""


class _BoundedRangeLiteral(RangeLiteral):
    """A range no longer than the loop limit.

    Loops over a range are already bounded, but a filter such as `join` turns
    the whole range into a list first: `(1..100000000000) | join` would exhaust
    memory before any output limit is checked. Bounds may come from contact
    data, so the check happens when the range is built.
    """

    __slots__ = ()

    def _make_range(self, start: Any, stop: Any) -> range:
        made = super()._make_range(start, stop)
        if len(made) > _MessageEnvironment.loop_iteration_limit:
            raise RangeLimitError(
                f"range longer than {_MessageEnvironment.loop_iteration_limit} items",
                token=self.token,
            )
        return made

    def check_literal_bounds(self) -> None:
        """Reject `(1..100000000)` when the template is saved, not at send."""
        if isinstance(self.start, IntegerLiteral) and isinstance(
            self.stop, IntegerLiteral
        ):
            self._make_range(self.start.value, self.stop.value)


def _expressions_within(expression: Expression) -> Iterator[Expression]:
    yield expression
    for child in expression.children():
        yield from _expressions_within(child)


def _bound_ranges(template: BoundTemplate) -> None:
    # Liquid's parser builds RangeLiteral directly, so the bound is swapped in
    # on the parsed tree; the subclass adds behaviour only, no state.
    static_context = RenderContext(template)
    pending: list[Node] = list(template.nodes)
    while pending:
        node = pending.pop()
        for root in node.expressions():
            for expression in _expressions_within(root):
                if type(expression) is RangeLiteral:
                    expression.__class__ = _BoundedRangeLiteral
                    cast(_BoundedRangeLiteral, expression).check_literal_bounds()
        pending.extend(node.children(static_context, include_partials=False))


@dataclass(frozen=True)
class CompiledTemplate:
    source: str
    template: BoundTemplate
    variables: tuple[str, ...]


def _line_of(error: LiquidError, body: str) -> int:
    try:
        context = error.context()
    except ValueError:
        context = None
    if context is None:
        # Errors found at end of input (an unclosed block) carry no position.
        return body.count("\n") + 1
    return context[0]


def _line_at(body: str, index: int) -> int:
    return body.count("\n", 0, index) + 1


def _reject_unknown_filters(body: str, analysis: TemplateAnalysis) -> None:
    # Liquid only notices an unknown filter when rendering reaches it.
    for name, spans in analysis.filters.items():
        if name not in _environment.filters:
            raise TemplateSyntaxError(
                _line_at(body, spans[0].index), f"unknown filter '{name}'"
            )


def _input_variable_paths(analysis: TemplateAnalysis) -> tuple[str, ...]:
    paths = {
        str(variable)
        for root, variables in analysis.globals.items()
        if root not in LIQUID_BUILTIN_NAMES
        for variable in variables
    }
    return tuple(sorted(paths))


@lru_cache(maxsize=COMPILED_TEMPLATE_CACHE_SIZE)
def compile_template(body: str) -> CompiledTemplate:
    """Parse `body` once per process; raises TemplateSyntaxError."""
    try:
        template = _environment.from_string(body)
        analysis = template.analyze(include_partials=False)
        _bound_ranges(template)
    except LiquidError as error:
        raise TemplateSyntaxError(_line_of(error, body), str(error.message)) from error
    _reject_unknown_filters(body, analysis)
    return CompiledTemplate(
        source=body, template=template, variables=_input_variable_paths(analysis)
    )


def template_variables(body: str) -> list[str]:
    """Variable paths the template reads from its scope, e.g. `address.city`.

    Loop variables, `assign`/`capture` names and Liquid's `now`/`today` are not
    listed: the template provides those itself.
    """
    return list(compile_template(body).variables)


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _without_blanks(value: Any) -> Any:
    """Drop None and blank strings, so that Liquid sees them as undefined.

    Then `default` fills them, and without a default they are reported like any
    undefined variable, whatever filters they pass through.
    """
    if isinstance(value, Mapping):
        return {
            key: _without_blanks(item)
            for key, item in value.items()
            if not _is_blank(item)
        }
    if isinstance(value, list | tuple):
        return [_without_blanks(item) for item in value]
    return value


def _render_scope(
    attributes: Mapping[str, Any], phone: str, extra: Mapping[str, Any] | None
) -> dict[str, Any]:
    # `phone` and `extra` (e.g. the triggering `event`) win over attributes of the
    # same name: they come from the engine, not from imported contact data.
    scope: dict[str, Any] = {**attributes, "phone": phone, **(extra or {})}
    cleaned: dict[str, Any] = _without_blanks(scope)
    return cleaned


def render_message(
    body: str,
    attributes: Mapping[str, Any],
    phone: str,
    extra: Mapping[str, Any] | None = None,
) -> RenderResult:
    """Render one recipient's message and list the variables it left empty.

    Line breaks come out as LF whatever their form (CRLF, CR): Liquid renders
    into a universal-newlines buffer. Raises TemplateSyntaxError for a
    template that does not compile, and TemplateRenderError when rendering fails.
    """
    compiled = compile_template(body)
    audit = _RenderAudit()
    reset_token = _current_audit.set(audit)
    try:
        text = compiled.template.render(_render_scope(attributes, phone, extra))
    except LiquidError as error:
        raise TemplateRenderError(str(error.message)) from error
    finally:
        _current_audit.reset(reset_token)
    return RenderResult(body=text, missing_variables=sorted(audit.missing))


def render_content_variables(
    mapping: Mapping[str, str],
    attributes: Mapping[str, Any],
    phone: str,
    extra: Mapping[str, Any] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Render WhatsApp content variables (placeholder → Liquid expression).

    Twilio fills its approved content template (ContentSid) with these values, so
    they are held to the body's rule: returns the rendered values and every
    variable left empty. Raises like `render_message`.
    """
    values: dict[str, str] = {}
    missing: set[str] = set()
    for placeholder, expression in mapping.items():
        rendered = render_message(expression, attributes, phone, extra)
        values[placeholder] = rendered.body
        missing.update(rendered.missing_variables)
    return values, sorted(missing)
