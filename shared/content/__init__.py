"""Message content: Liquid templates, SMS encoding and segments, content rules."""
