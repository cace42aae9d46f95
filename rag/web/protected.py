"""Admin and staff actions as Gradio handlers behind a password: every call checks it, and a
client that keeps guessing wrong is made to wait (``rag.web.limits``)."""

from __future__ import annotations

import inspect
import logging

import gradio as gr

from rag.web.admin import WrongPassword
from rag.web.limits import LimitExceeded, LoginThrottle, client_key

log = logging.getLogger(__name__)


def client_of(request: gr.Request | None) -> str:
    """What limits are counted against (rag.web.limits.client_key of the address rag.web.guard found)."""
    return client_key(request.client.host) if request is not None and request.client else "unknown"


def password_guarded(action, throttle: LoginThrottle, role: str, errors: tuple[type[Exception], ...]):
    """An admin/staff action for the UI and API: refused while the calling client is throttled
    (rag.web.limits), a wrong password counted against it, expected errors shown as messages.

    Gradio hands a handler the request when a parameter is annotated ``gr.Request`` (and fills
    ``gr.Progress`` defaults), matching parameters by position: the wrapper declares the action's
    parameters plus a trailing ``request`` (its signature and annotations are what Gradio reads).
    """
    def run(*args):
        *inputs, request = args
        client = client_of(request)
        try:
            throttle.check(client)
            result = action(*inputs)
        except WrongPassword as exc:
            throttle.failed(client, role)
            raise gr.Error(str(exc)) from None
        except (LimitExceeded, *errors) as exc:
            raise gr.Error(str(exc)) from None
        throttle.succeeded(client)
        return result

    signature = inspect.signature(action)
    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request)
    run.__signature__ = signature.replace(parameters=[*signature.parameters.values(), request])
    run.__annotations__ = {"request": gr.Request}  # Gradio reads the type from here
    run.__name__ = getattr(action, "__name__", "action")
    return run
