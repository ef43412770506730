"""Task types: one module each; everything that differs between MOT, SOT,
VID, VIS (and plain detection) lives there, behind ``TaskType``
(``base.py``). Adding one: a module with a ``TaskType`` subclass, and its line
in ``TASK_TYPES``."""
from ..errors import ConfigError
from .base import TaskType
from .det import Detection
from .mot import MOT
from .sot import SOT
from .vid import VID
from .vis import VIS

# The registry, in the order a config's model class is tried.
TASK_TYPES = (
    MOT,
    SOT,
    VID,
    VIS,
    Detection,
)

__all__ = ['TaskType', 'TASK_TYPES', 'task_type_for', 'task_type_named']


def task_type_named(name):
    """The TaskType class called ``name`` ('mot', 'sot', ...)."""
    for task_type in TASK_TYPES:
        if task_type.name == name:
            return task_type
    raise KeyError(f'no task type {name!r} (known: {", ".join(t.name for t in TASK_TYPES)})')


def task_type_for(cfg):
    """The TaskType class of a loaded config, from the class its model.type names."""
    from .. import mmtrack_compat as compat
    model_class = compat.model_class(cfg)
    for task_type in TASK_TYPES:
        if task_type.recognises(model_class):
            return task_type
    raise ConfigError(
        f"model type '{cfg.model.type}' is not an MMTracking video model "
        '(expected MOT: ByteTrack, DeepSORT, Tracktor, QDTrack, OCSORT; SOT: SiamRPN, Stark; '
        'VID: DFF, FGFA, SELSA; VIS: MaskTrackRCNN; or an mmdet detector)')
