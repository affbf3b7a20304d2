"""The last line of defence for the Carrot API key: scrubbed from every ``carrot_ai`` log line.

Our own messages never format the key. But an internal-error line quotes an exception, and an exception raised
by user code (a custom ``redact_fn``, say) may quote a string that holds the key; this filter masks it there.
Request bodies get the same treatment in :func:`carrot_ai.export._encode.encode_record`.
"""

from __future__ import annotations

import logging
import re

MASK = "[REDACTED]"
# Short or unusual values could match ordinary text; real keys are long runs of these characters.
_SCRUBBABLE = re.compile(r"^[A-Za-z0-9._~+/=-]{8,}$")


def scrubbable(secret: str | None) -> bool:
    """Whether ``secret`` is distinctive enough to be masked wherever it appears."""
    return bool(secret) and bool(_SCRUBBABLE.match(secret or ""))


class ScrubSecrets(logging.Filter):
    """Mask registered secrets in the formatted message of every record of the logger it is attached to."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:
            return True
        scrubbed = message
        for secret in self.secrets:
            if secret in scrubbed:
                scrubbed = scrubbed.replace(secret, MASK)
        if scrubbed is not message:
            record.msg, record.args = scrubbed, None
        return True


_filter = ScrubSecrets()
logging.getLogger("carrot_ai").addFilter(_filter)


def register_secret(secret: str | None) -> None:
    """Mask ``secret`` in ``carrot_ai`` log lines from now on (ignored unless :func:`scrubbable`)."""
    if secret and scrubbable(secret):
        _filter.secrets.add(secret)
