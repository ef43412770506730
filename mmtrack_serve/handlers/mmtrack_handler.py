"""TorchServe handler: a whole video in, an annotated H.264 mp4 (or JSON, or
MOTChallenge txt) out; or, for a request with a sequence id, one chunk of a live
video tracked on in that sequence's session. A thin adapter over the core session.

TorchServe's own ``BaseHandler.handle`` drives it: ``preprocess`` reads and
checks each request of the batch (``video_request``), ``inference`` tracks it
through the core's frame loop, ``postprocess`` makes each answer; so
TorchServe's ``HandlerTime`` metric and its profiler work as for any handler.
A request that fails at any step becomes its own error answer; the others in
the batch go on.

Whole video: the raw body (``curl -T video.mp4``, ``--data-binary``) or a
multipart form field (``-F data=@video.mp4``). Options as headers or form fields
(TorchServe 0.12 drops query parameters): ``score_thr`` (0..1, default the
task's: ``TaskType.default_score_thr``), ``output`` (mp4, json or mot; default
mp4), ``init_bbox=x1,y1,x2,y2`` (SOT); public-detection MOT models take the
video's boxes as a multipart field ``detections`` (MOTChallenge det.txt; for a
chunk, frames numbered as in the whole sequence). Bad input gets the error's
HTTP status (``errors``; 400 for input) with ``{"code", "type", "message"}``;
the worker stays up. Each request gets a private temporary directory (never the
working directory), removed on success and on every error path, and a new
session, so tracker state never leaks between requests.

Streaming (``ts_request_sequence_id`` and friends, by the names in force in the
worker's context; see ``sequences`` and the README's "Streaming"): a chunk (a
short video or one image) goes through the sequence's session, so frame ids and
track ids continue across chunks; JSON by default. After each chunk the
sequence's state goes to the state store (``state_store``: a folder by
default, or Redis), so any worker takes the next chunk with the same ids;
without a store, sessions live in this worker only, bounded (503 when full) and
evicted when idle, and a sequence it does not hold is a 410, never a silent
restart.
"""
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

from ts.torch_handler.base_handler import BaseHandler

from mmtrack_serve import mmtrack_compat, snapshot
from mmtrack_serve.api import track_video
from mmtrack_serve.errors import InputError, MMTrackServeError
from mmtrack_serve.frame_loop import track_frames
from mmtrack_serve.handlers import sequences as seqs
from mmtrack_serve.handlers.outcomes import Failed, Tracked
from mmtrack_serve.handlers.state_store import (DEFAULT_MAX_STATE_MB, MAX_STATE_MB_ENV,
                                                STATE_DIR_ENV, STATE_STORE_ENV, StateTooLarge,
                                                open_store)
from mmtrack_serve.limits import (LIMITS_ENV, SERVER_DEFAULTS, Deadline, time_budget_for)
from mmtrack_serve.handlers.video_request import (ChunkRequest, VideoRequest, find_option,
                                                  parse_chunk_request, parse_video_request)
from mmtrack_serve.models import load_model
from mmtrack_serve.results import mot_lines, results_json
from mmtrack_serve.serving.launcher import DEFAULT_RESPONSE_TIMEOUT_S
from mmtrack_serve.serving.protocol import (CHUNK_HEADER, FIRST_FRAME_HEADER, OUTPUT_TYPES,
                                            REPLAYED_HEADER, RESTARTED_HEADER, STATE_HEADER,
                                            STATE_MEMORY, STATE_SAVED, STREAM_KEY, SequenceHeaders)
from mmtrack_serve.session import TrackingSession, check_detections_given
from mmtrack_serve.trackers import TRACKER_IMPL_ENV
from mmtrack_serve.tuning import tune_malloc
from mmtrack_serve.video import VideoWriter

logger = logging.getLogger('mmtrack_serve.handler')

TEMP_PREFIX = 'mmtrack-serve-'


def restore_root_logging():
    """mmcv's get_logger lowers the root logger's console handlers to ERROR
    (against duplicate DDP logs). A TorchServe worker sends its logs and its
    metrics through those handlers, so they would vanish: put them back."""
    for handler in logging.root.handlers:
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.NOTSET)
    logger.setLevel(logging.INFO)


def _workers(yaml_config):
    return max(int(yaml_config.get('minWorkers') or 1), int(yaml_config.get('maxWorkers') or 1))


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class MMTrackHandler(BaseHandler):

    def initialize(self, context):
        tune_malloc()
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
        # the server's choice (mmtrack-serve serve --tracker-impl), else the converter's
        tracker_impl = os.environ.get(TRACKER_IMPL_ENV) or settings.get('tracker_impl')
        self.model = load_model(cfg, checkpoint, self.device, tracker_impl=tracker_impl)
        restore_root_logging()
        self.model_name = context.manifest['model']['modelName']
        self.temp_root = os.environ.get('MMTRACK_SERVE_TMPDIR') or tempfile.gettempdir()
        # an operator may rename TorchServe's sequence headers (TS_REQUEST_SEQUENCE_ID...)
        self.header_names = SequenceHeaders(context.header_key_sequence_id,
                                            context.header_key_sequence_start,
                                            context.header_key_sequence_end)
        self.limits = self._limits(yaml_config)
        self._init_state_store(yaml_config)
        self._init_sequences(yaml_config)
        self.initialized = True
        batch = (self.detector_batch or 'auto') if self.model.can_batch_frames else 1
        tracker = getattr(self.model.module, 'tracker', None)
        logger.info('loaded %s model %s (%s) on %s (%s torch threads, detector batch %s%s)',
                    self.model.task.upper(), self.model_name, self.model.module.__class__.__name__,
                    self.device, threads, batch,
                    f', tracker {type(tracker).__name__}: {self.model.tracker_impl}' if tracker is not None else '')
        logger.info('%s: request limits %s', self.model_name,
                    ', '.join(f'{k}={v}' for k, v in self.limits.as_dict().items()))
        if self.sequences is not None:
            logger.info('%s: stream state %s', self.model_name,
                        f'in {self.state_store} (snapshots up to {self.max_state_mb:g} MB)'
                        if self.state_store else 'in this worker\'s memory only')

    def _limits(self, yaml_config):
        """The request limits: model-config.yaml's ``handler.limits`` (written
        by mmtrack2torchserve; the server's defaults for archives made before),
        then what the server was started with (``mmtrack-serve serve --limit``,
        in MMTRACK_SERVE_LIMITS: for every model under "*", or under this one's name)."""
        name = self.model_name
        limits = replace(SERVER_DEFAULTS, how_to_raise=(
            'convert the model with mmtrack2torchserve --{flag} N, or serve it with '
            f'mmtrack-serve serve --limit {name}:{{name}}=N (0: no limit)'))
        timeout = float(yaml_config.get('responseTimeout') or DEFAULT_RESPONSE_TIMEOUT_S)
        limits = limits.with_values({'time_budget_s': time_budget_for(timeout)})
        limits = limits.with_values((yaml_config.get('handler') or {}).get('limits') or {})
        overrides = os.environ.get(LIMITS_ENV)
        if overrides:
            try:
                by_model = json.loads(overrides)
                for key in ('*', name):
                    limits = limits.with_values(by_model.get(key) or {})
            except (ValueError, KeyError, AttributeError) as e:
                raise MMTrackServeError(f'{LIMITS_ENV} is not valid ({type(e).__name__}: {e}): '
                                        '{"*" or model name: {limit name: value}} expected') from None
        return limits

    def _set_torch_threads(self, wanted, workers):
        """On CPU, ``wanted`` threads, or (0) the cores shared among the
        workers: torch's default of every core per worker makes two workers'
        threads spin-wait on each other (BENCHMARKS.md, one vs two workers)."""
        import torch
        if self.device != 'cpu':
            return torch.get_num_threads()
        torch.set_num_threads(wanted or max(1, _cpu_count() // max(1, workers)))
        return torch.get_num_threads()

    def _init_state_store(self, yaml_config):
        """Where streams keep their state between chunks (``state_store``):
        the server's choice (``mmtrack-serve serve --state-store``, in the
        environment), else model-config.yaml's ``handler.sequences.state_store``;
        "default" is a folder in the run dir of ``mmtrack-serve serve`` (else
        in the temp dir), which outlives a worker."""
        settings = ((yaml_config.get('handler') or {}).get('sequences') or {})
        url = os.environ.get(STATE_STORE_ENV) or str(settings.get('state_store') or 'default')
        if url == 'default':
            url = f'dir:{os.environ.get(STATE_DIR_ENV) or Path(self.temp_root) / "mmtrack-serve-state"}'
        try:
            self.state_store = open_store(url, model_name=self.model_name)
        except (ValueError, ImportError) as e:
            raise MMTrackServeError(f'state store {url!r} ({STATE_STORE_ENV}): {e}') from None
        except OSError as e:
            # whole videos need no store: serve them, and streams from memory only
            logger.error('%s: state store %s cannot be used (%s): streams stay in this '
                         'worker\'s memory only', self.model_name, url, e)
            self.state_store = None
        self.max_state_mb = float(os.environ.get(MAX_STATE_MB_ENV)
                                  or settings.get('max_state_mb') or DEFAULT_MAX_STATE_MB)
        timeout = float(yaml_config.get('responseTimeout') or DEFAULT_RESPONSE_TIMEOUT_S)
        # a Redis lease outlives a worker that died holding it by this much at most
        self.lease_s = (self.limits.time_budget_s or timeout) + 30
        self.holder = f'{socket.gethostname()} pid {os.getpid()}'

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
        elif workers > 1 and not yaml_config.get('sequenceBatching') and self.state_store is None:
            self.no_streaming_reason = (
                f'streaming needs the chunks of a sequence to reach one worker, and this model runs '
                f'{workers} workers without sequence batching or a state store: serve it with a '
                'state store (mmtrack-serve serve --state-store), convert it with --workers 1, or '
                'with --sequence-batching (TorchServe routes each sequence to one worker)')
        else:
            self.sequences = seqs.SequenceStore(max_sequences, idle_s)
            self.sequences.start_sweeper(also=self.state_store.sweep if self.state_store else None)

    @staticmethod
    def _device(properties):
        import torch
        gpu_id = properties.get('gpu_id')
        if torch.cuda.is_available() and gpu_id is not None:
            return f'cuda:{gpu_id}'
        return 'cpu'

    # -- BaseHandler's steps: one list of requests in, one list of answers out ----------
    def preprocess(self, data):
        """Each request read and checked: a VideoRequest (its upload in a
        private temp dir), a ChunkRequest, or a Failed."""
        return [self._read(idx, request) for idx, request in enumerate(data)]

    def inference(self, data, *args, **kwargs):
        """Each request tracked: a Tracked, or a Failed."""
        return [self._track(request) for request in data]

    def postprocess(self, data):
        """Each answer's body, with its status, headers and metrics set; every
        request's temp dir removed."""
        return [self._answer(outcome) for outcome in data]

    # -- preprocess ----------------------------------------------------------------------
    def _read(self, idx, request):
        headers = self.context.get_all_request_header(idx) or {}
        sequence = workdir = None
        try:
            sequence = seqs.classify(headers, find_option(request, headers, STREAM_KEY),
                                     self.header_names)
            if sequence is not None:
                self.context.set_response_header(idx, self.header_names.id, sequence.seq_id)
                if self.sequences is None:
                    raise seqs.StreamingUnavailable(self.no_streaming_reason)
                chunk_request = parse_chunk_request(idx, request, headers, sequence,
                                                    self.header_names.end, self.limits)
                if chunk_request.chunk is not None:
                    check_detections_given(self.model, chunk_request.detections is not None)
                return chunk_request
            seq_id = headers.get(self.header_names.id)
            if seq_id:
                # sequence batching gave this whole-video request a sequence of its
                # own: ending it at once frees TorchServe's slot (continuousBatching)
                self.context.set_response_header(idx, self.header_names.end, seq_id)
            workdir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.temp_root)
            return parse_video_request(idx, request, headers, workdir)
        except Exception as e:  # noqa: BLE001 - the worker must survive any one request
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            return Failed(idx, e, 'chunk' if sequence else 'request', sequence)

    # -- inference -----------------------------------------------------------------------
    def _track(self, request):
        if isinstance(request, Failed):
            return request
        try:
            if isinstance(request, VideoRequest):
                return self._track_video(request)
            return self._track_chunk(request)
        except Exception as e:  # noqa: BLE001 - the worker must survive any one request
            if isinstance(request, VideoRequest):
                shutil.rmtree(request.workdir, ignore_errors=True)
                return Failed(request.idx, e, 'request')
            return Failed(request.idx, e, 'chunk', request.sequence)

    def _track_video(self, request):
        output = request.workdir / 'result.mp4' if request.output == 'mp4' else None
        passes = self.model.detector_passes
        results = track_video(self.model, request.video_path, output=output,
                              score_thr=request.score_thr, init_bbox=request.init_bbox,
                              source_name='the uploaded video', detector_batch=self.detector_batch,
                              detections=request.detections, limits=self.limits,
                              # an mp4 answer needs no per-frame results (a few KB a frame)
                              keep_frames=request.output != 'mp4')
        video = output.read_bytes() if output else None
        return Tracked(request, results, results['video']['num_frames'], video=video,
                       detector_passes=self.model.detector_passes - passes)

    def _track_chunk(self, request):
        """Tracks one chunk in its sequence's session (see the README's
        "Streaming"), holding the sequence's lease in the state store."""
        store, seq_id = self.state_store, request.sequence.seq_id
        with store.lease(seq_id, self.lease_s) if store else nullcontext():
            return self._track_leased_chunk(request, store.meta(seq_id) if store else None)

    def _track_leased_chunk(self, request, meta):
        seq, restart_reason, replay = self._open_sequence(request, meta)
        if replay is not None:
            return replay
        passes = self.model.detector_passes
        try:
            results, video = self._step_chunk(seq, request)
        except BaseException as e:
            self._chunk_failed(seq, e)
            raise
        index = seq.chunks
        seq.chunks += 1 if request.chunk is not None else 0
        end = request.sequence.end
        state, note, session_bytes = self._session_snapshot(seq, end)
        frames = results['video']['num_frames']
        tracked = Tracked(request, results, frames, first_frame=seq.frames - frames, video=video,
                          restart_reason=restart_reason, chunk_index=index,
                          detector_passes=self.model.detector_passes - passes,
                          state=state, state_note=note)
        tracked.body, tracked.content_type = self._chunk_body(tracked)
        try:
            self._save(seq, tracked, session_bytes)
        except BaseException:
            # the store still holds the state before this chunk: a retry tracks it again from there
            self.sequences.discard(seq)
            raise
        if end:
            self.sequences.close(seq, 'ended')
        else:
            self.sequences.release(seq)
        return tracked

    def _open_sequence(self, request, meta):
        """(Sequence, restart reason or None, None), or (None, None, a Tracked
        answered again) for a retried chunk. The Sequence is this worker's copy
        when it is the latest, else the state store's, a new one for a start, or
        a fresh one for an id this worker evicted when idle; else 409/410/507.
        ``meta``: the state store's record of the sequence (None: none)."""
        sequence, chunk = request.sequence, request.chunk
        store, seq_id = self.sequences, sequence.seq_id
        seq = store.acquire(seq_id)
        if seq is not None and meta is not None and seq.version != meta.get('version'):
            store.discard(seq)              # another worker went on with it: the store has it
            seq = None
        record = None
        try:
            if seq is None and meta is not None and not sequence.start:
                record = self._load_record(seq_id, meta)
            last = seq.last_answer if seq is not None else (record or {}).get('answer')
            if request.index is not None and last and last.get('index') == request.index \
                    and not sequence.start:
                if seq is not None:
                    store.release(seq)
                return None, None, self._replayed(request, last)
            if sequence.start:
                running = seq or (meta if meta and meta.get('status') in ('live', 'memory') else None)
                if running is not None:
                    chunks, frames = (seq.chunks, seq.frames) if seq else (meta.get('chunks'),
                                                                           meta.get('frames'))
                    raise seqs.SequenceConflict(
                        f'sequence {seq_id} is already running ({chunks} chunks, {frames} '
                        f'frames): send its next chunk without {self.header_names.start}, end it '
                        f'with {self.header_names.end}: true, or start another id')
                self._check_index(request, 0)
                return self._new_sequence(seq_id, request.score_thr, request.init_bbox), None, None
            if seq is None and record is not None:
                if record.get('session') is None:
                    m = record['meta']
                    raise seqs.SequenceGone(
                        f'sequence {seq_id} has ended ({m.get("chunks")} chunks, '
                        f'{m.get("frames")} frames): {seqs.start_again()}')
                seq = self._restore(seq_id, record)
            if seq is not None:
                if chunk is not None and seq.width is not None \
                        and (chunk.width, chunk.height) != (seq.width, seq.height):
                    raise InputError(f'the chunk is {chunk.width}x{chunk.height}, sequence '
                                     f'{seq_id} is {seq.width}x{seq.height}: every chunk of a '
                                     'sequence must have one frame size')
                self._check_index(request, seq.chunks)
                return seq, None, None
        except BaseException:
            if seq is not None:
                store.release(seq)
            raise
        tomb = store.tombstone(seq_id)
        if tomb is None or tomb.reason != 'evicted' or chunk is None:
            raise seqs.SequenceGone(seqs.gone_message(seq_id, tomb, durable=self.state_store is not None))
        # an id evicted for idleness comes back: it starts again, and says so
        if self.model.task_type.needs_init_bbox and not request.init_bbox:
            raise seqs.SequenceGone(
                f'sequence {seq_id} {seqs.eviction(tomb)}, and {self.model.task_type.title} '
                'cannot start again without the target: resend this chunk with init_bbox (and '
                f'{self.header_names.start}: true)')
        score_thr = tomb.score_thr if request.score_thr is None else request.score_thr
        seq = self._new_sequence(seq_id, score_thr, request.init_bbox)
        reason = (f'sequence {seq_id} {seqs.eviction(tomb)}: this chunk started it again, so '
                  'frame ids and track ids start again from 0')
        return seq, reason, None

    @staticmethod
    def _check_index(request, expected):
        if request.index is not None and request.index != expected:
            seq_id = request.sequence.seq_id
            raise seqs.ChunkOutOfOrder(
                f'chunk {request.index} of sequence {seq_id} is out of order: its next chunk is '
                f'{expected} ({CHUNK_HEADER}: {expected}); chunks {expected} and on must be sent '
                'in order' if request.index > expected else
                f'chunk {request.index} of sequence {seq_id} was tracked already (its next '
                f'chunk is {expected}); only the last chunk\'s answer is kept for a retry')

    # -- the state store -----------------------------------------------------------------
    def _load_record(self, seq_id, meta):
        """The state store's snapshot of a sequence this worker does not hold
        (its latest): {'meta', 'answer', 'session' (None once ended)}."""
        status = meta.get('status')
        if status == STATE_MEMORY:
            raise StateTooLarge(
                f'sequence {seq_id} lives in the memory of one worker only ({meta.get("holder")}): '
                f'{meta.get("note") or "its state could not be saved"}. Send its chunks to that '
                'worker (sequence batching, or one worker), or raise the limit; if that worker '
                f'has restarted, the sequence is lost: {seqs.start_again()}')
        blob = self.state_store.read(seq_id, 'state') if status in ('live', 'ended') else None
        if blob is None and status in ('live', 'ended'):
            raise seqs.SequenceGone(f'the stored state of sequence {seq_id} has expired or was '
                                    f'removed: {seqs.start_again()}')
        try:
            if blob is None:
                raise snapshot.SnapshotError(f'its record in the state store is not valid ({meta!r:.80})')
            record = snapshot.loads(blob, device=self.model.device, what='it')
            if not isinstance(record, dict) or not isinstance(record.get('meta'), dict):
                raise snapshot.SnapshotError('it holds no sequence')
            if record.get('session') is not None:
                record['session'] = TrackingSession.restore(self.model, snapshot.loads(
                    record['session'], device=self.model.device, what='its session'))
            return record
        except snapshot.SnapshotError as e:
            self.state_store.delete(seq_id)
            logger.error('%s: sequence %s: bad stored state removed: %s', self.model_name, seq_id, e)
            raise snapshot.SnapshotError(
                f'the stored state of sequence {seq_id} cannot be used: {e}. It was altered, or '
                f'written by another model or version; it has been removed: {seqs.start_again()}') from None

    def _restore(self, seq_id, record):
        """This worker's copy of a sequence from the store's record."""
        m, session = record['meta'], record['session']
        try:
            seq = seqs.Sequence(seq_id, session, session.score_thr, m.get('init_bbox'),
                                last_used=time.monotonic(), chunks=int(m['chunks']),
                                frames=int(m['frames']), width=m.get('width'),
                                height=m.get('height'), fps=m.get('fps'), version=m['version'],
                                last_answer=record.get('answer'), saved=True)
        except (KeyError, TypeError, ValueError) as e:
            raise snapshot.SnapshotError(f'its counts are not valid ({type(e).__name__})') from None
        if session.frame_id != seq.frames:
            raise snapshot.SnapshotError(f'its session is at frame {session.frame_id}, '
                                         f'its sequence at {seq.frames}')
        self.sequences.make_room(spare=lambda s: s.saved)
        self.sequences.add(seq)
        logger.info('%s: sequence %s taken up from %s at chunk %d, frame %d', self.model_name,
                    seq_id, self.state_store, seq.chunks, seq.frames)
        return seq

    def _session_snapshot(self, seq, end):
        """(state, note, the session's snapshot bytes) after a chunk: the
        snapshot when the store takes it; else the sequence stays in this
        worker's memory (STATE_MEMORY) and ``note`` says why."""
        if self.state_store is None or end:
            return None, None, None
        try:
            data = snapshot.dumps(seq.session.snapshot())
        except snapshot.SnapshotError as e:
            return STATE_MEMORY, f'its state is not plain data ({e})', None
        limit = self.max_state_mb * (1 << 20)
        if self.max_state_mb > 0 and len(data) > limit:
            return STATE_MEMORY, (f'its state is {len(data) / (1 << 20):.1f} MB, over the state '
                                  f'store\'s limit of {self.max_state_mb:g} MB (mmtrack-serve serve '
                                  '--max-state-mb)'), None
        return STATE_SAVED, None, data

    def _save(self, seq, tracked, session_bytes):
        """Keeps the chunk's answer (for a retry) and, with a state store,
        writes the sequence there: its snapshot, or a record that it lives in
        this worker's memory (STATE_MEMORY) or has ended."""
        request = tracked.request
        if request.chunk is not None:       # an end without a chunk takes no index
            seq.last_answer = {'index': tracked.chunk_index, 'body': _as_bytes(tracked.body),
                               'content_type': tracked.content_type,
                               'first_frame': tracked.first_frame,
                               'num_frames': tracked.num_frames,
                               'restarted': tracked.restart_reason is not None}
        if self.state_store is None:
            return
        ended = request.sequence.end
        version = uuid.uuid4().hex
        counts = {'version': version, 'chunks': seq.chunks, 'frames': seq.frames}
        meta = {**counts, 'width': seq.width, 'height': seq.height, 'fps': seq.fps,
                'init_bbox': seq.init_bbox}
        status = 'ended' if ended else STATE_MEMORY if tracked.state == STATE_MEMORY else 'live'
        blob = None
        if status != STATE_MEMORY:
            blob = snapshot.dumps({'meta': meta, 'answer': seq.last_answer,
                                   'session': session_bytes})
        pointer = {'status': status, **counts, 'holder': self.holder, 'note': tracked.state_note,
                   'expires_at': time.time() + self.sequences.idle_s}
        self.state_store.write(seq.seq_id, {'state': blob, 'meta': json.dumps(pointer).encode()},
                               ttl_s=self.sequences.idle_s)
        seq.version, seq.saved = version, status == 'live'

    def _replayed(self, request, answer):
        """The stored answer of a chunk sent again (same index)."""
        logger.info('%s: sequence %s chunk %d sent again: its stored answer returned',
                    self.model_name, request.sequence.seq_id, answer['index'])
        return Tracked(request, {}, answer['num_frames'], first_frame=answer['first_frame'],
                       chunk_index=answer['index'], body=answer['body'],
                       content_type=answer['content_type'], replayed=True,
                       restart_reason='' if answer.get('restarted') else None)

    def _new_sequence(self, seq_id, score_thr, init_bbox):
        """A session for a new sequence; registered once its first chunk is tracked."""
        self.sequences.make_room(spare=lambda s: s.saved)
        session = self.model.session(init_bbox=init_bbox, score_thr=score_thr)
        return seqs.Sequence(seq_id, session, session.score_thr, init_bbox,
                             last_used=time.monotonic())

    def _step_chunk(self, seq, request):
        """The chunk's frames through the core's frame loop (detector batched,
        I/O in the background, as a whole video); returns (this chunk's results
        dict, its annotated mp4 bytes or None)."""
        session, chunk = seq.session, request.chunk
        if request.score_thr is not None:
            session.score_thr = request.score_thr
        width, height = (chunk.width, chunk.height) if chunk is not None else (seq.width, seq.height)
        fps = (chunk.fps if chunk is not None and chunk.fps else seq.fps) or seqs.IMAGE_FPS
        frames, video = [], None
        if chunk is not None:
            # the annotated mp4 goes through a private temp dir: faststart rewrites the file
            workdir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.temp_root) \
                if request.output == 'mp4' else None
            try:
                writer = VideoWriter(Path(workdir) / 'chunk.mp4', width, height, fps) \
                    if workdir else None
                try:
                    frames, _ = track_frames(session, chunk.frames(), writer=writer,
                                             detections=request.detections,
                                             detector_batch=self.detector_batch,
                                             deadline=Deadline(self.limits))
                finally:
                    if writer is not None:
                        writer.close()
                if workdir:
                    video = (Path(workdir) / 'chunk.mp4').read_bytes()
            finally:
                if workdir:
                    shutil.rmtree(workdir, ignore_errors=True)
        elif request.output == 'mp4':
            video = b''                     # an end without a chunk: nothing to show
        if not self.sequences.is_live(seq.seq_id):
            self.sequences.add(seq)
        if chunk is not None:
            seq.width, seq.height = chunk.width, chunk.height
            seq.fps = seq.fps or chunk.fps
        seq.frames = session.frame_id
        info = {'width': width, 'height': height, 'fps': float(fps), 'num_frames': len(frames)}
        return results_json(info, self.model.task, self.model.classes, frames), video

    def _chunk_failed(self, seq, error):
        """A chunk failed while tracking. Unless it was refused before the
        session moved (a user error at its first frame), the session's state may
        be partial: the sequence is dropped (later chunks get 410, never ids
        that silently skip frames)."""
        store = self.sequences
        if not store.is_live(seq.seq_id):
            return                                  # a new sequence: never registered
        if seq.session.frame_id == seq.frames and isinstance(error, MMTrackServeError):
            store.release(seq)
        elif seq.saved:
            store.discard(seq)      # the state store holds it as it was before this chunk
        else:
            store.close(seq, 'failed', detail=f'{type(error).__name__} at frame {seq.session.frame_id}')

    # -- postprocess ---------------------------------------------------------------------
    def _answer(self, outcome):
        context = self.context
        idx = outcome.idx if isinstance(outcome, Failed) else outcome.request.idx
        sequence = outcome.sequence if isinstance(outcome, Failed) else \
            getattr(outcome.request, 'sequence', None)
        try:
            if isinstance(outcome, Failed):
                return self._error(idx, outcome.error, outcome.what)
            try:
                if isinstance(outcome.request, ChunkRequest):
                    return self._chunk_answer(outcome)
                return self._video_answer(outcome)
            except Exception as e:  # noqa: BLE001 - the worker must survive any one request
                return self._error(idx, e, 'chunk' if sequence else 'request')
        finally:
            if isinstance(outcome, Tracked) and isinstance(outcome.request, VideoRequest):
                shutil.rmtree(outcome.request.workdir, ignore_errors=True)
            if sequence is not None and (self.sequences is None
                                         or not self.sequences.is_live(sequence.seq_id)):
                # nothing left to route here: free TorchServe's sequence slot at once
                context.set_response_header(idx, self.header_names.end, sequence.seq_id)

    def _video_answer(self, tracked):
        request = tracked.request
        seconds = time.perf_counter() - request.started
        restore_root_logging()
        self._record_metrics(tracked, seconds)
        self.context.set_response_content_type(request.idx, OUTPUT_TYPES[request.output])
        logger.info('%s: %d frames in %.2f s (%.2f fps), %s out', self.model_name,
                    tracked.num_frames, seconds, tracked.num_frames / seconds, request.output)
        return self._body(tracked, request.output)

    def _chunk_body(self, tracked):
        """(body, content type) of a chunk's answer."""
        request = tracked.request
        if request.output != 'json':
            return self._body(tracked, request.output), OUTPUT_TYPES[request.output]
        restarted = tracked.restart_reason is not None
        head = {'sequence_id': request.sequence.seq_id, 'chunk': tracked.chunk_index,
                'restarted': restarted}
        if restarted:
            head['restart_reason'] = tracked.restart_reason
        head['ended'] = request.sequence.end
        if tracked.state:
            head['state'] = tracked.state
        if tracked.state_note:
            head['state_note'] = tracked.state_note
        return json.dumps({**head, **tracked.results}), OUTPUT_TYPES['json']

    def _chunk_answer(self, tracked):
        request, context = tracked.request, self.context
        idx, seq_id, end = request.idx, request.sequence.seq_id, request.sequence.end
        restarted = tracked.restart_reason is not None
        frames, first = tracked.num_frames, tracked.first_frame
        seconds = time.perf_counter() - request.started
        restore_root_logging()
        if frames and not tracked.replayed:
            self._record_metrics(tracked, seconds)
        context.set_response_header(idx, CHUNK_HEADER, str(tracked.chunk_index))
        context.set_response_header(idx, FIRST_FRAME_HEADER, str(first))
        context.set_response_header(idx, RESTARTED_HEADER, str(restarted).lower())
        if tracked.replayed:
            context.set_response_header(idx, REPLAYED_HEADER, 'true')
        if tracked.state:
            context.set_response_header(idx, STATE_HEADER, tracked.state)
        context.set_response_content_type(idx, tracked.content_type)
        if not tracked.replayed:
            logger.info('%s: sequence %s chunk %d%s: frames %d-%d in %.2f s%s%s', self.model_name,
                        seq_id, tracked.chunk_index, ' (restarted)' if restarted else '', first,
                        first + frames - 1, seconds, ', ended' if end else '',
                        f' (state in memory only: {tracked.state_note})'
                        if tracked.state == STATE_MEMORY else '')
        return tracked.body

    @staticmethod
    def _body(tracked, output):
        if output == 'mp4':
            return tracked.video
        if output == 'json':
            return json.dumps(tracked.results)
        return ''.join(mot_lines(tracked.results['frames']))

    def _error(self, idx, error, what):
        """The answer to a request that raised ``error``: the status it carries
        (``errors``, ``sequences``), or 500, logged with its traceback."""
        body = {}
        if isinstance(error, MMTrackServeError):
            code = error.status
            message = str(error)
            retry_after = getattr(error, 'retry_after', None)
            if retry_after is not None:
                self.context.set_response_header(idx, 'Retry-After', str(retry_after))
            if hasattr(error, 'details'):
                # a limit: which, the value found, the value allowed
                body = error.details()
                self._count('RequestsCut' if error.cut else 'RequestsRefused')
                logger.warning('%s: %s %s: %s', self.model_name, what,
                               'cut' if error.cut else 'refused', message)
        else:
            logger.exception('%s failed', what, exc_info=error)
            code = 500
            message = f'internal error: {type(error).__name__}: {error}'
        self.context.set_response_status(code, message.splitlines()[0][:200], idx)
        self.context.set_response_content_type(idx, 'application/json')
        return json.dumps({'code': code, 'type': type(error).__name__, 'message': message, **body})

    def _count(self, name):
        metrics = getattr(self.context, 'metrics', None)
        if metrics is not None:
            metrics.add_counter(name, 1, dimensions=[])

    def _record_metrics(self, tracked, seconds):
        metrics = getattr(self.context, 'metrics', None)
        if metrics is None:
            return
        from ts.metrics.metric_type_enum import MetricTypes
        frames = tracked.num_frames
        # fresh lists: TorchServe appends its default dimensions to the one passed
        metrics.add_counter('FramesProcessed', frames, dimensions=[])
        # fewer than FramesProcessed where frames batch through the detector
        metrics.add_counter('DetectorPasses', tracked.detector_passes, dimensions=[])
        metrics.add_metric('FramesPerSecond', round(frames / seconds, 3), unit='count',
                           dimensions=[], metric_type=MetricTypes.GAUGE)


def _as_bytes(body):
    return body.encode('utf-8') if isinstance(body, str) else bytes(body or b'')
