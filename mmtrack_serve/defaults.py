"""The score threshold's default, the task's own (``TaskType.default_score_thr``,
each task module says why), for the core, the CLIs, the handler and streaming."""
from .tasks import TASK_TYPES, task_type_named

SCORE_THR_HELP = ('drop objects scored below this (default: the task\'s, as MMTracking: '
                  + ', '.join(f'{t.default_score_thr:g} for {t.name.upper()}' for t in TASK_TYPES)
                  + '; 0 keeps every object the tracker reports)')


def default_score_thr(task):
    """The default threshold of the task named ``task``."""
    return task_type_named(task).default_score_thr


def resolve_score_thr(task, score_thr):
    """``score_thr``, or the task's default when it is None."""
    return default_score_thr(task) if score_thr is None else float(score_thr)
