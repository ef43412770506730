"""Errors a user can act on. Anything raising these is caught by the CLIs (one
line, non-zero exit) and by the TorchServe handler (the HTTP ``status`` each
carries, with a JSON body)."""


class MMTrackServeError(Exception):
    """Base class: the message is meant for the user, as is. ``status``: the
    HTTP status the server answers it with (422: the request is well formed,
    but this model cannot take it)."""
    status = 422


class InputError(MMTrackServeError):
    """The video, image or option sent in is unusable (HTTP 400)."""
    status = 400


class ConfigError(MMTrackServeError):
    """The config or checkpoint cannot become a tracking model."""
