"""Defaults that follow MMTracking's own, defined once for the core, the CLIs,
the handler and streaming.

The score threshold only filters what the model reports. For MOT and VIS the
tracker already decided what to report: ByteTrack keeps low-score boxes that
continue a track (its reason to exist), so a cut at 0.5 drops real tracks.
MMTracking's ``demo_mot_vis.py`` defaults to 0.0. VID models are detectors
that report every box above their own low test threshold; MMTracking's
``demo_vid.py`` and ``tools/torchserve/test_torchserve.py`` show them at 0.5.
SOT has one target per frame, always kept (see ``mmtrack_compat.to_objects``).
"""

SCORE_THR_BY_TASK = {'mot': 0.0, 'sot': 0.0, 'vid': 0.5, 'vis': 0.0}

SCORE_THR_HELP = ('drop objects scored below this (default: the task\'s, as MMTracking: '
                  '0 for MOT, VIS and SOT, i.e. every object the tracker reports; 0.5 for VID)')


def default_score_thr(task):
    return SCORE_THR_BY_TASK[task]


def resolve_score_thr(task, score_thr):
    """``score_thr``, or the task's default when it is None."""
    return default_score_thr(task) if score_thr is None else float(score_thr)
