"""SCF entry point (handler string `handler.main_handler`): translate, do not decide.

Everything is built once per warm container (`get_app`) and reused; the business rules live in `blueprint/`.
"""

from __future__ import annotations

from typing import Any

from blueprint.app import get_app


def main_handler(event: Any, context: Any) -> Any:
    """Handle one SCF invocation (timer, HTTP, queue, or a direct / chained call).

    Raises:
        BlueprintError: for async triggers when a retry can help (SCF then retries), or bad configuration.
    """
    return get_app().handle(event, context)
