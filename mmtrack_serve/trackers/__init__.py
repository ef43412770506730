"""Fast drop-in versions of mmtrack's trackers, and the switch between them.

``install(module, impl)`` replaces a loaded MOT model's ``tracker`` by the
fast class for its type (``FAST_TRACKERS``) when ``impl`` is 'fast' (the
default), built from the very same settings; 'mmtrack' keeps mmtrack's own.
A tracker type without a fast version, a subclass, or a model whose motion
model is not mmtrack's plain ``KalmanFilter`` keeps mmtrack's tracker.
"""
import logging

from ..errors import ConfigError

TRACKER_IMPLS = ('fast', 'mmtrack')
DEFAULT_TRACKER_IMPL = 'fast'
# the setting's name in the workers' environment, model-config.yaml and the CLIs
TRACKER_IMPL_ENV = 'MMTRACK_SERVE_TRACKER_IMPL'

TRACKER_IMPL_HELP = ("the tracker's implementation: fast (default: mmtrack_serve's vectorised "
                     "drop-in for ByteTrack, OC-SORT, SORT and DeepSORT, same ids and boxes) or "
                     "mmtrack (mmtrack's own); other trackers always run mmtrack's")

logger = logging.getLogger(__name__)


def fast_trackers():
    """{mmtrack tracker class: its fast version}."""
    from mmtrack.models.trackers import ByteTracker, OCSORTTracker, SortTracker
    from .byte_tracker import FastByteTracker
    from .ocsort_tracker import FastOCSORTTracker
    from .sort_tracker import FastSortTracker
    return {ByteTracker: FastByteTracker, OCSORTTracker: FastOCSORTTracker,
            SortTracker: FastSortTracker}


def check_impl(impl):
    """``impl`` or the default; a ConfigError naming the choices otherwise."""
    impl = impl or DEFAULT_TRACKER_IMPL
    if impl not in TRACKER_IMPLS:
        raise ConfigError(f'unknown tracker implementation {impl!r}: choose one of '
                         + ', '.join(TRACKER_IMPLS))
    return impl


def install(module, impl=None):
    """Gives ``module`` (a built mmtrack model) the tracker ``impl`` asks for;
    returns the name of the one it runs: 'fast', or 'mmtrack' where no fast
    version applies."""
    impl = check_impl(impl)
    tracker = getattr(module, 'tracker', None)
    if tracker is None:
        return 'mmtrack'
    fast = fast_trackers().get(type(tracker))
    if impl == 'mmtrack' or fast is None:
        return 'mmtrack'
    from .kalman import KalmanArrays
    motion = getattr(module, 'motion', None)
    if motion is None or not KalmanArrays.supports(motion) or tracker.momentums is not None:
        logger.info('%s keeps mmtrack\'s tracker: its motion model or momentums are not the stock ones',
                    type(tracker).__name__)
        return 'mmtrack'
    replacement = fast.__new__(fast)
    # the same settings, hooks and init_cfg; not mmtrack's empty ``tracks`` dict
    replacement.__dict__.update({k: v for k, v in tracker.__dict__.items() if k != 'tracks'})
    replacement.reset()
    module.tracker = replacement
    return 'fast'
