"""mmtrack-serve: MMTracking models as a video-in, tracks-out library, served by TorchServe.

The core (this package's top-level modules) knows nothing of TorchServe:

    model = load_model('bytetrack_yolox_x_crowdhuman_mot17-private-half', 'ckpt.pth')
    results = track_video(model, 'in.mp4', output='out.mp4')    # whole video
    session = model.session(); session.step(frame_bgr)          # frame by frame
"""
from . import numpy_compat
from .errors import ConfigError, InputError, MMTrackServeError

# Before mmdet, mmtrack or motmetrics are imported through this package.
numpy_compat.install()

__version__ = '0.1.0'
__all__ = ['load_model', 'track_video', 'save_results', 'TrackingSession', 'VideoReader',
           'VideoWriter', 'MMTrackServeError', 'InputError', 'ConfigError']


def __getattr__(name):
    # mmcv/mmtrack take seconds to import: only when a model is wanted.
    if name == 'load_model':
        from .models import load_model
        return load_model
    if name in ('track_video', 'save_results'):
        from . import api
        return getattr(api, name)
    if name == 'TrackingSession':
        from .session import TrackingSession
        return TrackingSession
    if name in ('VideoReader', 'VideoWriter'):
        from . import video
        return getattr(video, name)
    raise AttributeError(name)
