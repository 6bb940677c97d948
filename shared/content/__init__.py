"""Message content: Liquid templates, SMS encoding and segments, content rules."""

from shared.content.encoding import Encoding, SegmentInfo, count_segments
from shared.content.templates import (
    CompiledTemplate,
    RenderResult,
    TemplateChannel,
    TemplateRenderError,
    TemplateSyntaxError,
    compile_template,
    render_message,
    template_variables,
)
from shared.content.validation import (
    ContentViolation,
    ViolationCode,
    validate_content,
    with_opt_out_footer,
)

__all__ = [
    "CompiledTemplate",
    "ContentViolation",
    "Encoding",
    "RenderResult",
    "SegmentInfo",
    "TemplateChannel",
    "TemplateRenderError",
    "TemplateSyntaxError",
    "ViolationCode",
    "compile_template",
    "count_segments",
    "render_message",
    "template_variables",
    "validate_content",
    "with_opt_out_footer",
]
