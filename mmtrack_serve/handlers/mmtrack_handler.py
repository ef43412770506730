"""TorchServe handler: a whole video in, an annotated H.264 mp4 (or JSON, or
MOTChallenge txt) out. A thin adapter over the core session.

Request: the raw body (``curl -T video.mp4``, ``--data-binary``) or a
multipart form field (``-F data=@video.mp4``). Options as query parameters
or headers: ``score_thr`` (0..1, default 0.5), ``output`` (mp4, json or mot;
default mp4), ``init_bbox=x1,y1,x2,y2`` (SOT). Bad input gets HTTP 400 with
``{"code": 400, "type": ..., "message": ...}``; the worker stays up.

Each request gets a private temporary directory (never the working
directory), removed on success and on every error path, and a new session,
so tracker state never leaks between requests.
"""
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from ts.torch_handler.base_handler import BaseHandler

from mmtrack_serve import mmtrack_compat
from mmtrack_serve.api import track_video
from mmtrack_serve.errors import InputError, MMTrackServeError
from mmtrack_serve.models import load_model
from mmtrack_serve.handlers.video_request import OUTPUT_TYPES, parse_request
from mmtrack_serve.results import mot_lines

logger = logging.getLogger('mmtrack_serve.handler')


def restore_root_logging():
    """mmcv's get_logger lowers the root logger's console handlers to ERROR
    (against duplicate DDP logs). A TorchServe worker sends its logs and its
    metrics through those handlers, so they would vanish: put them back."""
    for handler in logging.root.handlers:
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.NOTSET)
    logger.setLevel(logging.INFO)

TEMP_PREFIX = 'mmtrack-serve-'


class MMTrackHandler(BaseHandler):

    def initialize(self, context):
        properties = context.system_properties
        model_dir = Path(properties['model_dir'])
        self.device = self._device(properties)
        config = model_dir / 'config.py'
        serialized = context.manifest['model'].get('serializedFile')
        checkpoint = model_dir / serialized if serialized else None
        cfg = mmtrack_compat.load_config(config)
        # bundled init_cfg weights are named relative to the archive
        mmtrack_compat.rebase_pretrained(cfg.model, model_dir)
        self.model = load_model(cfg, checkpoint, self.device)
        restore_root_logging()
        self.model_name = context.manifest['model']['modelName']
        self.temp_root = os.environ.get('MMTRACK_SERVE_TMPDIR') or tempfile.gettempdir()
        self.initialized = True
        logger.info('loaded %s model %s (%s) on %s', self.model.task.upper(), self.model_name,
                    self.model.module.__class__.__name__, self.device)

    @staticmethod
    def _device(properties):
        import torch
        gpu_id = properties.get('gpu_id')
        if torch.cuda.is_available() and gpu_id is not None:
            return f'cuda:{gpu_id}'
        return 'cpu'

    # -- BaseHandler's steps, for one request --------------------------------------
    def preprocess(self, request, idx, workdir):
        """Upload to ``workdir/input``, options parsed and checked."""
        headers = self.context.get_all_request_header(idx) or {}
        return parse_request(request, headers, Path(workdir) / 'input')

    def inference(self, video_request, workdir):
        """Tracks the video; returns (results dict, annotated mp4 path or None)."""
        output = Path(workdir) / 'result.mp4' if video_request.output == 'mp4' else None
        results = track_video(self.model, video_request.video_path, output=output,
                              score_thr=video_request.score_thr,
                              init_bbox=video_request.init_bbox, source_name='the uploaded video')
        return results, output

    def postprocess(self, results, output_path, output_type):
        if output_type == 'mp4':
            return output_path.read_bytes()
        if output_type == 'json':
            return json.dumps(results)
        return ''.join(mot_lines(results['frames']))

    # -- TorchServe's entry point --------------------------------------------------
    def handle(self, data, context):
        self.context = context
        return [self._handle_one(request, idx, context) for idx, request in enumerate(data)]

    def _handle_one(self, request, idx, context):
        start = time.perf_counter()
        workdir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.temp_root)
        try:
            video_request = self.preprocess(request, idx, workdir)
            results, output_path = self.inference(video_request, workdir)
            body = self.postprocess(results, output_path, video_request.output)
        except InputError as e:
            return self._error(context, idx, 400, e)
        except MMTrackServeError as e:
            return self._error(context, idx, 422, e)
        except Exception as e:  # noqa: BLE001 - the worker must survive any one request
            logger.exception('request failed')
            return self._error(context, idx, 500, e)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        seconds = time.perf_counter() - start
        frames = results['video']['num_frames']
        restore_root_logging()
        self._record_metrics(context, frames, seconds)
        context.set_response_content_type(idx, OUTPUT_TYPES[video_request.output])
        logger.info('%s: %d frames in %.2f s (%.2f fps), %s out', self.model_name, frames, seconds,
                    frames / seconds, video_request.output)
        return body

    def _error(self, context, idx, code, error):
        message = str(error) if code != 500 else f'internal error: {type(error).__name__}: {error}'
        context.set_response_status(code, message.splitlines()[0][:200], idx)
        context.set_response_content_type(idx, 'application/json')
        return json.dumps({'code': code, 'type': type(error).__name__, 'message': message})

    def _record_metrics(self, context, frames, seconds):
        metrics = getattr(context, 'metrics', None)
        if metrics is None:
            return
        from ts.metrics.metric_type_enum import MetricTypes
        # fresh lists: TorchServe appends its default dimensions to the one passed
        metrics.add_counter('FramesProcessed', frames, dimensions=[])
        metrics.add_metric('FramesPerSecond', round(frames / seconds, 3), unit='count',
                           dimensions=[], metric_type=MetricTypes.GAUGE)

