"""A logging filter that masks credentials in every record, whatever logger produced it.

The manager never logs a token, password or header on purpose; this filter is the safety net for
third-party messages (aiohttp, SQLAlchemy URLs, tracebacks that echo a request).
"""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ***"),
    (re.compile(r"\b(dfp|dfs)_[A-Za-z0-9_-]+"), r"\1_***"),
    (re.compile(r"(?i)\b(authorization|cookie|set-cookie|x-amz-security-token)(\s*[:=]\s*)[^\r\n,;]+"), r"\1\2***"),
    (
        re.compile(
            r"""(?i)(["']?(?:password|passwd|secret_key|secret_access_key|access_key|token|root_password)["']?"""
            r"""\s*[:=]\s*["']?)[^"'\s,}&]+"""
        ),
        r"\1***",
    ),
    (re.compile(r"(://[^:/@\s]+:)[^@/\s]+@"), r"\1***@"),  # user:password@ in URLs
]


def redact(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True
