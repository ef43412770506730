"""TorchServe handler: a whole video in, an annotated H.264 mp4 (or JSON, or
MOTChallenge txt) out; or, for a request with a sequence id, one chunk of a live
video tracked on in that sequence's session. A thin adapter over the core session.

Whole video: the raw body (``curl -T video.mp4``, ``--data-binary``) or a
multipart form field (``-F data=@video.mp4``). Options as headers or form fields
(TorchServe 0.12 drops query parameters): ``score_thr`` (0..1, default the
task's: 0 for MOT/VIS/SOT, 0.5 for VID; ``mmtrack_serve.defaults``),
``output`` (mp4, json or mot; default mp4), ``init_bbox=x1,y1,x2,y2`` (SOT);
public-detection MOT models take the video's boxes as a multipart field
``detections`` (MOTChallenge det.txt; for a chunk, frames numbered as in the
whole sequence). Bad input gets HTTP 400 with ``{"code": 400, "type": ...,
"message": ...}``; the worker stays up. Each request gets a private temporary directory (never the
working directory), removed on success and on every error path, and a new
session, so tracker state never leaks between requests.

Streaming (``ts_request_sequence_id`` and friends; see ``sequences`` and the
README's "Streaming"): a chunk (a short video or one image) goes through the
sequence's session, so frame ids and track ids continue across chunks; JSON by
default. Sessions are bounded per worker (503 when full), evicted when idle, and
a sequence this worker does not hold is a 410, never a silent restart.
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
from mmtrack_serve.detections import for_frame
from mmtrack_serve.drawing import draw_objects
from mmtrack_serve.errors import InputError, MMTrackServeError
from mmtrack_serve.models import load_model
from mmtrack_serve.handlers import sequences as seqs
from mmtrack_serve.handlers.video_request import (OUTPUT_TYPES, find_body,
                                                  find_option, parse_detections, parse_output,
                                                  parse_request, parse_score_thr)
from mmtrack_serve.session import check_detections_given
from mmtrack_serve.results import mot_lines, results_json
from mmtrack_serve.tuning import limit_malloc_arenas
from mmtrack_serve.video import VideoWriter

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


def _workers(yaml_config):
    return max(int(yaml_config.get('minWorkers') or 1), int(yaml_config.get('maxWorkers') or 1))


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class MMTrackHandler(BaseHandler):

    def initialize(self, context):
        limit_malloc_arenas()
        properties = context.system_properties
        model_dir = Path(properties['model_dir'])
        self.device = self._device(properties)
        config = model_dir / 'config.py'
        serialized = context.manifest['model'].get('serializedFile')
        checkpoint = model_dir / serialized if serialized else None
        yaml_config = getattr(context, 'model_yaml_config', None) or {}
        settings = yaml_config.get('handler') or {}
        threads = self._set_torch_threads(int(settings.get('torch_threads') or 0),
                                          _workers(yaml_config))
        self.detector_batch = int(settings.get('detector_batch') or 0) or None     # None: automatic
        cfg = mmtrack_compat.load_config(config)
        # bundled init_cfg weights are named relative to the archive
        mmtrack_compat.rebase_pretrained(cfg.model, model_dir)
        self.model = load_model(cfg, checkpoint, self.device)
        restore_root_logging()
        self.model_name = context.manifest['model']['modelName']
        self.temp_root = os.environ.get('MMTRACK_SERVE_TMPDIR') or tempfile.gettempdir()
        self._init_sequences(yaml_config)
        self.initialized = True
        batch = (self.detector_batch or 'auto') if self.model.can_batch_frames else 1
        logger.info('loaded %s model %s (%s) on %s (%s torch threads, detector batch %s)',
                    self.model.task.upper(), self.model_name, self.model.module.__class__.__name__,
                    self.device, threads, batch)

    def _set_torch_threads(self, wanted, workers):
        """On CPU, ``wanted`` threads, or (0) the cores shared among the
        workers: torch's default of every core per worker makes two workers'
        threads spin-wait on each other (BENCHMARKS.md, one vs two workers)."""
        import torch
        if self.device != 'cpu':
            return torch.get_num_threads()
        torch.set_num_threads(wanted or max(1, _cpu_count() // max(1, workers)))
        return torch.get_num_threads()

    def _init_sequences(self, yaml_config):
        """Streaming settings from model-config.yaml's ``handler.sequences``
        (written by mmtrack2torchserve); defaults for archives made before."""
        settings = ((yaml_config.get('handler') or {}).get('sequences') or {})
        max_sequences = int(settings.get('max_sequences', seqs.DEFAULT_MAX_SEQUENCES))
        idle_s = float(settings.get('idle_ms', seqs.DEFAULT_IDLE_MS)) / 1000
        workers = _workers(yaml_config)
        self.sequences = None
        self.no_streaming_reason = None
        if max_sequences <= 0:
            self.no_streaming_reason = ('streaming is off for this model (converted with '
                                        '--max-sequences 0); send whole videos without sequence headers')
        elif workers > 1 and not yaml_config.get('sequenceBatching'):
            self.no_streaming_reason = (
                f'streaming needs the chunks of a sequence to reach one worker, and this model runs '
                f'{workers} workers without sequence batching: convert it with --workers 1, or with '
                '--sequence-batching (TorchServe routes each sequence to one worker)')
        else:
            self.sequences = seqs.SequenceStore(max_sequences, idle_s)
            self.sequences.start_sweeper()

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
                              score_thr=video_request.score_thr, init_bbox=video_request.init_bbox,
                              source_name='the uploaded video', detector_batch=self.detector_batch,
                              detections=video_request.detections,
                              # an mp4 answer needs no per-frame results (a few KB a frame)
                              keep_frames=video_request.output != 'mp4')
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
        headers = self.context.get_all_request_header(idx) or {}
        try:
            sequence = seqs.classify(headers, find_option(request, headers, 'stream'))
        except MMTrackServeError as e:
            return self._error(context, idx, 400, e)
        if sequence is not None:
            return self._handle_chunk(request, idx, context, headers, sequence)
        seq_id = headers.get(seqs.HEADER_ID)
        if seq_id:
            # sequence batching gave this whole-video request a sequence of its
            # own: ending it at once frees TorchServe's slot (continuousBatching)
            context.set_response_header(idx, seqs.HEADER_END, seq_id)
        return self._handle_video(request, idx, context)

    def _handle_video(self, request, idx, context):
        start = time.perf_counter()
        workdir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.temp_root)
        try:
            video_request = self.preprocess(request, idx, workdir)
            results, output_path = self.inference(video_request, workdir)
            body = self.postprocess(results, output_path, video_request.output)
        except Exception as e:  # noqa: BLE001 - the worker must survive any one request
            return self._failed(context, idx, e, 'request')
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

    # -- streaming: one chunk of a sequence -----------------------------------------
    def _handle_chunk(self, request, idx, context, headers, sequence):
        """Tracks one chunk in its sequence's session; the response holds that
        chunk's frames (JSON by default). See the README's "Streaming"."""
        start = time.perf_counter()
        seq_id = sequence.seq_id
        context.set_response_header(idx, seqs.HEADER_ID, seq_id)
        try:
            if self.sequences is None:
                raise seqs.StreamingUnavailable(self.no_streaming_reason)
            output = parse_output(find_option(request, headers, 'output') or 'json')
            score_thr = parse_score_thr(find_option(request, headers, 'score_thr'))
            init_bbox = find_option(request, headers, 'init_bbox') or None
            body = find_body(request)
            chunk = seqs.read_chunk(body) if body else None
            if chunk is None and not sequence.end:
                raise InputError('no chunk in the request: send a short video or one image as '
                                 'the body, or only ts_request_sequence_end: true to end the sequence')
            # public detections: frame numbers are the sequence's (1-based across chunks)
            detections = parse_detections(request)
            if chunk is not None:
                check_detections_given(self.model, detections is not None)
            seq, restart_reason = self._open_sequence(sequence, score_thr, init_bbox, chunk)
            try:
                result, body_out = self._track_chunk(seq, chunk, score_thr, output, detections)
            except BaseException as e:
                self._chunk_failed(seq, e)
                raise
            index = seq.chunks
            seq.chunks += 1 if chunk is not None else 0
            if sequence.end:
                self.sequences.close(seq, 'ended')
            else:
                self.sequences.release(seq)
        except Exception as e:  # noqa: BLE001 - the worker must survive any one request
            return self._failed(context, idx, e, 'chunk')
        finally:
            if self.sequences is None or not self.sequences.is_live(seq_id):
                # nothing left to route here: free TorchServe's sequence slot at once
                context.set_response_header(idx, seqs.HEADER_END, seq_id)
        restarted = restart_reason is not None
        frames = len(result['frames'])
        first = result['frames'][0]['frame_id'] if frames else seq.frames
        seconds = time.perf_counter() - start
        restore_root_logging()
        if frames:
            self._record_metrics(context, frames, seconds)
        context.set_response_header(idx, 'x-sequence-chunk', str(index))
        context.set_response_header(idx, 'x-sequence-first-frame', str(first))
        context.set_response_header(idx, 'x-sequence-restarted', str(restarted).lower())
        context.set_response_content_type(idx, OUTPUT_TYPES[output])
        logger.info('%s: sequence %s chunk %d%s: frames %d-%d in %.2f s%s', self.model_name, seq_id,
                    index, ' (restarted)' if restarted else '', first, first + frames - 1, seconds,
                    ', ended' if sequence.end else '')
        if output == 'json':
            head = {'sequence_id': seq_id, 'chunk': index, 'restarted': restarted}
            if restarted:
                head['restart_reason'] = restart_reason
            head['ended'] = sequence.end
            return json.dumps({**head, **result})
        if output == 'mot':
            return ''.join(mot_lines(result['frames']))
        return body_out     # the chunk's annotated mp4 (empty for an end without a chunk)

    def _open_sequence(self, sequence, score_thr, init_bbox, chunk):
        """(Sequence, restart reason or None): the running one, a new one for a
        start, a fresh one for an id this worker evicted when idle; else 409/410."""
        store, seq_id = self.sequences, sequence.seq_id
        seq = store.acquire(seq_id)
        if sequence.start:
            if seq is not None:
                store.release(seq)
                raise seqs.SequenceConflict(
                    f'sequence {seq_id} is already running ({seq.chunks} chunks, {seq.frames} '
                    'frames): send its next chunk without ts_request_sequence_start, end it with '
                    'ts_request_sequence_end: true, or start another id')
            return self._new_sequence(seq_id, score_thr, init_bbox), None
        if seq is not None:
            if chunk is not None and seq.width is not None \
                    and (chunk.width, chunk.height) != (seq.width, seq.height):
                store.release(seq)
                raise InputError(f'the chunk is {chunk.width}x{chunk.height}, sequence {seq_id} '
                                 f'is {seq.width}x{seq.height}: every chunk of a sequence must '
                                 'have one frame size')
            return seq, None
        tomb = store.tombstone(seq_id)
        if tomb is None or tomb.reason != 'evicted' or chunk is None:
            raise seqs.SequenceGone(seqs.gone_message(seq_id, tomb))
        # an id evicted for idleness comes back: it starts again, and says so
        if self.model.task == 'sot' and not init_bbox:
            raise seqs.SequenceGone(
                f'sequence {seq_id} {seqs.eviction(tomb)}, and single object tracking cannot '
                'start again without the target: resend this chunk with init_bbox (and '
                'ts_request_sequence_start: true)')
        seq = self._new_sequence(seq_id, tomb.score_thr if score_thr is None else score_thr,
                                 init_bbox)
        reason = (f'sequence {seq_id} {seqs.eviction(tomb)}: this chunk started it again, so '
                  'frame ids and track ids start again from 0')
        return seq, reason

    def _new_sequence(self, seq_id, score_thr, init_bbox):
        """A session for a new sequence; registered once its first chunk is tracked."""
        self.sequences.check_room()
        session = self.model.session(init_bbox=init_bbox, score_thr=score_thr)
        return seqs.Sequence(seq_id, session, session.score_thr, init_bbox,
                             last_used=time.monotonic())

    def _track_chunk(self, seq, chunk, score_thr, output, detections=None):
        """Steps the chunk's frames; returns (results dict of this chunk, mp4 bytes or None).
        ``detections``: ``{sequence frame_id: (N, 5)}`` for a public-detection model."""
        session = seq.session
        if score_thr is not None:
            session.score_thr = score_thr
        width, height = (chunk.width, chunk.height) if chunk is not None else (seq.width, seq.height)
        fps = (chunk.fps if chunk is not None and chunk.fps else seq.fps) or seqs.IMAGE_FPS
        frames, video = [], b''
        # the annotated mp4 goes through a private temp dir: faststart rewrites the file
        workdir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.temp_root) \
            if output == 'mp4' and chunk is not None else None
        try:
            writer = VideoWriter(Path(workdir) / 'chunk.mp4', width, height, fps) if workdir else None
            try:
                for frame in (chunk.frames() if chunk is not None else ()):
                    boxes = None if detections is None else for_frame(detections, session.frame_id)
                    result = session.step(frame, boxes)
                    frames.append(result.to_json())
                    if writer is not None:
                        writer.write(draw_objects(frame, result.objects))
            finally:
                if writer is not None:
                    writer.close()
            if workdir:
                video = (Path(workdir) / 'chunk.mp4').read_bytes()
        finally:
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
        if not self.sequences.is_live(seq.seq_id):
            self.sequences.add(seq)
        if chunk is not None:
            seq.width, seq.height = chunk.width, chunk.height
            seq.fps = seq.fps or chunk.fps
        seq.frames = session.frame_id
        info = {'width': width, 'height': height, 'fps': float(fps), 'num_frames': len(frames)}
        return results_json(info, self.model.task, self.model.classes, frames), video

    def _chunk_failed(self, seq, error):
        """A chunk failed while tracking. If the session had moved on, its state
        is partial: the sequence is dropped (later chunks get 410, never ids
        that silently skip frames); if not, it stays as it was."""
        store = self.sequences
        if not store.is_live(seq.seq_id):
            return                                  # a new sequence: never registered
        if seq.session.frame_id == seq.frames:
            store.release(seq)
        else:
            store.close(seq, 'failed', detail=f'{type(error).__name__} at frame {seq.session.frame_id}')

    def _failed(self, context, idx, error, what):
        """The error response for a request that raised ``error``: the
        sequence's own status, 400 for bad input, 422 for a model that cannot
        take it, 500 (logged with its traceback) for anything else."""
        if isinstance(error, seqs.SequenceError):
            if isinstance(error, seqs.SequencesFull):
                context.set_response_header(idx, 'Retry-After', str(error.retry_after))
            return self._error(context, idx, error.status, error)
        if isinstance(error, InputError):
            return self._error(context, idx, 400, error)
        if isinstance(error, MMTrackServeError):
            return self._error(context, idx, 422, error)
        logger.exception('%s failed', what)
        return self._error(context, idx, 500, error)

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

