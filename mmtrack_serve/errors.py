"""Errors a user can act on. Anything raising these is caught by the CLIs (one
line, non-zero exit) and by the TorchServe handler (HTTP 4xx with a JSON body)."""


class MMTrackServeError(Exception):
    """Base class: the message is meant for the user, as is."""


class InputError(MMTrackServeError):
    """The video, image or option sent in is unusable (HTTP 400)."""


class ConfigError(MMTrackServeError):
    """The config or checkpoint cannot become a tracking model."""
