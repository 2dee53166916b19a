"""Keep secrets out of logs: a logging filter that masks every registered secret value.

Secrets are held as ``pydantic.SecretStr`` in configuration; this filter is the second line of
defence for strings built from them (connection URIs, connector configs) that reach a log.
"""

import logging
import re

_SECRETS: set[str] = set()
_MASK = "********"


def register_secret(value: str | None) -> None:
    """Remember a secret so that any log record containing it is masked."""
    if value and len(value) >= 3:
        _SECRETS.add(value)


def mask(text: str) -> str:
    """Replace every registered secret and any ``user:password@`` URI credential in *text*."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", rf"\g<1>{_MASK}@", text)


def masked_line(error: object) -> str:
    """The first line of *error*'s text with secrets masked: drivers put hosts, queries and
    sometimes credentials on further lines, and a user's error is one line."""
    lines = mask(str(error)).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class SecretMaskingFilter(logging.Filter):
    """A logging filter that rewrites the formatted message with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_masking() -> None:
    """Attach the masking filter to every handler of the root logger and the Prefect loggers."""
    masking = SecretMaskingFilter()
    for name in ("", "prefect", "floe"):
        logger = logging.getLogger(name)
        logger.addFilter(masking)
        for handler in logger.handlers:
            handler.addFilter(masking)
