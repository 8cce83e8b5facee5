"""SCF entry point (handler string `handler.main_handler`): translate, do not decide.

Everything is built once per warm container (`get_app`) and reused; the business rules live in `blueprint/`.
"""

from __future__ import annotations

from typing import Any

from blueprint.app import answer_config_error, get_app
from blueprint.errors import ConfigError


def main_handler(event: Any, context: Any) -> Any:
    """Handle one SCF invocation (timer, HTTP, queue, or a direct / chained call).

    Raises:
        BlueprintError: for async triggers when a retry can help (SCF then retries), or bad configuration.
    """
    try:
        app = get_app()
    except ConfigError as err:
        return answer_config_error(err, event, context)
    return app.handle(event, context)
