"""BENCHMARKS.md from one run's results (``run.py``)."""
import time

TARGETS = {                       # (figure, limit): a ratio is met when <= limit
    'served_over_in_process': 1.05,
    'in_process_over_model_alone': 1.15,
    'peak_rss_long_over_short': 1.05,
    'chunk_latency_store_over_memory': 1.10,
    'tracker_step_fast_over_peer': 1.0,
    'cold_cli_peak_rss_tuned_over_defaults': 1.10,
}
from inprocess import ALONE, BACKGROUND_ONLY, BATCH4, BATCH4_ONLY, DEFAULT, PLAIN
from served import IN_PROCESS


def render(r):
    v = r['videos']
    short, real = v['short'], v['real_clip']
    lines = [
        '# Benchmarks',
        '',
        f'The latest `make bench` (benchmarks/run.py), {time.strftime("%Y-%m-%d")}, '
        f'{r["seconds"] / 60:.1f} minutes. Every ratio compares figures taken side by side in '
        f'this one run; times are medians of {r["repeats"]} interleaved runs for the demo '
        f'model and of {r.get("real_repeats", 1)} for the real-size model. Do not edit: the next '
        'run rewrites this file.'
        + (' **Quick run (--quick): short videos, 1 repeat; figures not for the record.**'
           if r['quick'] else ''),
        '',
        '| machine | |', '|---|---|',
        *[f'| {k} | {val} |' for k, val in r['machine'].items()],
        '',
        f'Models: the demo model ({r["demo_model"]}; ByteTrack, YOLOX-tiny at 320x256) on '
        f'a {_video(short)} synthetic video; the real-size model is MMTracking\'s '
        f'`sort_faster-rcnn_fpn_4e_mot17-private-half` (Faster R-CNN R50-FPN at 1088x1088, '
        f'seeded random weights) on {r["real_clip"]}, {_video(real)}.',
        '',
    ]
    lines += _targets(r) + _overhead(r) + _baseline(r) + _memory(r) + _cold_cli(r) \
        + _video_io(r) + _tracker(r) + _throughput(r) + _live(r) + _state(r) + _gains(r) + _method()
    return '\n'.join(lines) + '\n'


def _video(info):
    return (f'{info["width"]}x{info["height"]}, {info["frames"]} frames at {info["fps"]:g} fps '
            f'({info["frames"] / info["fps"]:.0f} s, {info["mib"]} MiB)')


def _met(value, limit):
    return 'met' if value <= limit else '**not met**'


def _served(r, kind):
    names = ('demo', 'demo_baseline') if kind == 'demo' else ('sort', 'sort_baseline')
    served = r[f'{kind}_served']
    return served[names[0]], served[names[1]]


def _targets(r):
    rows = ['## Targets', '', '| figure | model | ratio | target | |', '|---|---|---:|---:|---|']
    for kind, label in (('demo', 'demo, 640x480'), ('real', 'SORT R50-FPN, 1080p')):
        ours, _ = _served(r, kind)
        ratio = ours / r[f'{kind}_served'][IN_PROCESS]
        limit = TARGETS['served_over_in_process']
        rows.append(f'| served / in-process | {label} | {ratio:.3f} | <= {limit} | {_met(ratio, limit)} |')
    for kind, label in (('demo', 'demo, 640x480'), ('real', 'SORT R50-FPN, 1080p')):
        inproc = r[f'{kind}_in_process']
        limit = TARGETS['in_process_over_model_alone']
        ratio = inproc[DEFAULT] / inproc[ALONE]
        rows.append(f'| in-process / model alone | {label} | {ratio:.3f} | <= {limit} | {_met(ratio, limit)} |')
        plain = inproc[PLAIN] / inproc[ALONE]
        rows.append(f'| for reference: (in-process, frame by frame, inline I/O) / model alone | '
                    f'{label} | {plain:.3f} | | |')
    latency = r.get('chunk_latency')
    if latency:
        memory = latency['memory only']
        limit = TARGETS['chunk_latency_store_over_memory']
        for label, seconds in latency.items():
            if label != 'memory only':
                ratio = seconds / memory
                rows.append(f'| stream chunk latency, state in {label} / memory only (15-frame '
                            f'chunks) | demo, 640x480 | {ratio:.3f} | <= {limit} | {_met(ratio, limit)} |')
    for model, count, ratio in _fast_over_peer(r):
        limit = TARGETS['tracker_step_fast_over_peer']
        rows.append(f'| tracker step seconds, mmtrack-serve fast / Roboflow trackers {model}, '
                    f'{count} dets | {model} association | {ratio:.3f} | <= {limit} | {_met(ratio, limit)} |')
    from allocator import GLIBC, TUNED
    for model, row in (r.get('cold_cli') or {}).items():
        limit = TARGETS['cold_cli_peak_rss_tuned_over_defaults']
        ratio = row[TUNED]['peak_rss_mib'] / row[GLIBC]['peak_rss_mib']
        rows.append(f'| cold CLI peak RSS, malloc tuned / glibc defaults | {model} | {ratio:.3f} | '
                    f'<= {limit} | {_met(ratio, limit)} |')
    m = r['memory']
    ratio = m['long'] / m['short']
    limit = TARGETS['peak_rss_long_over_short']
    rows.append(f'| worker peak RSS, {r["videos"]["long"]["frames"]}-frame / '
                f'{r["videos"]["short"]["frames"]}-frame video | demo, 640x480 | {ratio:.3f} | '
                f'<= {limit} | {_met(ratio, limit)} |')
    return rows + ['']


def _overhead(r):
    rows = ['## 1. Serving overhead: served vs in-process vs the model alone', '',
            'Seconds per whole video. Served: the mp4 posted to TorchServe over HTTP as '
            '`curl -T` posts it, the annotated H.264 mp4 read back. In-process: '
            '`mmtrack_serve.api.track_video` (decode, track, draw, encode). Model alone: '
            "mmtrack's `inference_mot` per frame on frames already decoded in memory. "
            'Served / in-process compares the first two rows, run in turn while the server was '
            'up; the rows below them ran in turn earlier, with the model alone.', '']
    for kind, label in (('demo', 'Demo model, 640x480'), ('real', 'Real-size SORT R50-FPN, 1080p')):
        info = r['videos']['short' if kind == 'demo' else 'real_clip']
        alone = r[f'{kind}_in_process'][ALONE]
        ours, _ = _served(r, kind)
        rows += [f'**{label}** ({info["frames"]} frames)', '',
                 '| path | s / video | frames / s | / model alone |', '|---|---:|---:|---:|']
        entries = [('served (mmtrack-serve handler, defaults)', ours),
                   (IN_PROCESS, r[f'{kind}_served'][IN_PROCESS])] + list(r[f'{kind}_in_process'].items())
        for name, seconds in entries:
            rows.append(f'| {name} | {seconds:.2f} | {info["frames"] / seconds:.1f} | {seconds / alone:.3f} |')
        rows.append('')
    return rows


def _baseline(r):
    rows = ['## 2. Against a baseline that works as MMTracking\'s own handler does', '',
            'The baseline (`benchmarks/baseline_handler.py`) is served by the same TorchServe, on '
            'the same config and checkpoint: the upload written to a file in the working '
            'directory, OpenCV decode, `inference_mot` per frame, `model.show_result`, an `mp4v` '
            'file written and read back.', '',
            '| model | mmtrack-serve s / video | baseline s / video | baseline / mmtrack-serve |',
            '|---|---:|---:|---:|']
    for kind, label in (('demo', 'demo, 640x480'), ('real', 'SORT R50-FPN, 1080p')):
        ours, base = _served(r, kind)
        rows.append(f'| {label} | {ours:.2f} | {base:.2f} | {base / ours:.2f} |')
    codecs = r['codecs']
    rows += ['', f'Output codec: mmtrack-serve `{codecs["demo"]}` (H.264: plays in browsers), baseline '
             f'`{codecs["demo_baseline"]}` (FFmpeg\'s name for mp4v: browsers do not play it).', '']
    return rows


def _memory(r):
    m, v = r['memory'], r['videos']
    return ['## 3. Memory: worker peak RSS against video length', '',
            'The worker\'s kernel high-water mark (VmHWM), reset just before each request.', '',
            '| video | mmtrack-serve worker peak RSS |', '|---|---:|',
            f'| {_video(v["short"])} | {m["short"]:.0f} MiB |',
            f'| {_video(v["long"])} | {m["long"]:.0f} MiB |',
            f'| ratio | {m["long"] / m["short"]:.3f} |', '']


def _cold_cli(r):
    """The allocator table (benchmarks/allocator.py); absent from runs before it."""
    cold = r.get('cold_cli')
    if not cold:
        return []
    from allocator import ALLOCATORS, GLIBC, TUNED
    rows = ['## 3b. The cold CLI and the memory allocator', '',
            '`mmtrack-serve run` in a fresh process, as a user runs it: the whole command '
            '(imports, model load, decode, track, H.264 encode) in seconds, and the '
            'process\'s peak RSS, with glibc\'s defaults, with the settings mmtrack-serve '
            'applies at start-up (`tuning.MALLOC_SETTINGS`: every entry point, the default) '
            'and with jemalloc preloaded. Real-size models have seeded random weights, on the '
            '1080p clip.', ''] + ([r['cold_cli_note'], ''] if r.get('cold_cli_note') else []) + [
            '| model | frames | ' + ' | '.join(ALLOCATORS) + ' | defaults / tuned | peak RSS tuned / defaults |',
            '|---|---:|' + '---:|' * (len(ALLOCATORS) + 2)]
    for model, row in cold.items():
        cells = [(f'{row[a]["seconds"]:.2f} s, {row[a]["peak_rss_mib"]:.0f} MiB'
                  if 'seconds' in row[a] else row[a]['missing']) for a in ALLOCATORS]
        speedup = row[GLIBC]['seconds'] / row[TUNED]['seconds']
        rss = row[TUNED]['peak_rss_mib'] / row[GLIBC]['peak_rss_mib']
        rows.append(f'| {model} | {row["frames"]} | ' + ' | '.join(cells)
                    + f' | {speedup:.2f}x | {rss:.3f} |')
    return rows + ['']


def _video_io(r):
    rows = ['## 4. Video I/O alone', '',
            'Frames per second with no model: PyAV decode, drawing 6 labelled boxes, libx264 '
            '(veryfast, yuv420p) encode, all three in line or with the background threads '
            '`track_video` uses; and the baseline\'s OpenCV decode + mp4v encode.', '']
    sizes = [io['size'] for io in r['video_io']]
    rows += ['| step | ' + ' | '.join(f'{s} fps' for s in sizes) + ' |',
             '|---|' + '---:|' * len(sizes)]
    for name in r['video_io'][0]['fps']:
        rows.append(f'| {name} | ' + ' | '.join(f'{io["fps"][name]:.0f}' for io in r['video_io']) + ' |')
    return rows + ['']


def _tracker_hz(r):
    """{model: {tracker: {N (int): Hz}}} (JSON turns the counts into strings)."""
    return {model: {name: {int(n): f['hz'] for n, f in by_count.items()}
                    for name, by_count in by_tracker.items()}
            for model, by_tracker in r['tracker'].items()}


def _fast_over_peer(r):
    """[(tracker, N, seconds a step ours / Roboflow's)] at 50 detections and
    more, for each tracker where both ran."""
    ratios = []
    for model, by_tracker in _tracker_hz(r).items():
        fast = next((v for k, v in by_tracker.items() if k.startswith('mmtrack-serve fast')), None)
        peer = next((v for k, v in by_tracker.items() if k.startswith('Roboflow')), None)
        if fast and peer:
            ratios += [(model, n, peer[n] / fast[n]) for n in sorted(fast) if n in peer and n >= 50]
    return ratios


def _tracker(r):
    models = _tracker_hz(r)
    counts = sorted(next(iter(next(iter(models.values())).values())))
    rows = ['## 5. The tracker step alone', '',
            'Association only (Kalman prediction, matching, track bookkeeping), no detector: '
            'steps per second with N synthetic detections per frame (boxes moving straight, '
            'crossing), 100 frames, one thread (torch and BLAS), the trackers run in turn, '
            f'medians of {r.get("repeats", 1) if r.get("quick") else min(r.get("repeats", 3), 3)} '
            'rounds. mmtrack-serve fast is the default (`--tracker-impl fast`; same ids and boxes '
            'as mmtrack\'s, tests/test_trackers.py). ByteTrack is the demo model\'s tracker, SORT '
            'the real-size model\'s, OC-SORT the tracker of mmtrack\'s OC-SORT config run on the '
            'demo model\'s Kalman filter. Roboflow `trackers` runs in its own venv (numpy 2), with '
            'its own defaults.', '',
            '| tracker | implementation | ' + ' | '.join(f'{n} dets' for n in counts) + ' |',
            '|---|---|' + '---:|' * len(counts)]
    for model, by_tracker in models.items():
        for name, by_count in by_tracker.items():
            rows.append(f'| {model} | {name} | '
                        + ' | '.join(f'{by_count[n]:.0f} Hz' for n in counts) + ' |')
    return rows + ['']


def _live(r):
    """`mmtrack-serve stream` on a live source (absent from runs before it)."""
    if 'live_latency' not in r:
        return []
    rows = ['## Live streaming: capture-to-result latency', '',
            'The demo model, `mmtrack-serve stream` on a live UDP MPEG-TS source on 127.0.0.1 '
            f'({_video(r["videos"]["short"])}, sent at real time), lossless chunks; latency is '
            'each frame\'s `tracked_at - captured_at` in the jsonl.', '',
            '| chunk (frames) | latency p50 (s) | latency p95 (s) | tracked fps | source fps | dropped |',
            '|---|---|---|---|---|---|']
    for size, f in sorted(r['live_latency'].items(), key=lambda item: int(item[0])):
        rows.append(f'| {size} | {f["p50_s"]:.2f} | {f["p95_s"]:.2f} | {f["tracked_fps"]:.1f} | '
                    f'{f["source_fps"]:.1f} | {f["dropped"]} of {f["frames"] + f["dropped"]} |')
    ratio = r.get('streamed_over_whole')
    if ratio:
        rows += ['', f'A file streamed in {ratio["chunk_frames"]}-frame chunks: {ratio["streamed_s"]:.1f} s, '
                 f'posted whole: {ratio["whole_s"]:.1f} s; streamed / whole throughput '
                 f'{ratio["ratio"]:.2f} (goal >= 0.9).']
    return rows + ['']


def _state(r):
    """Durable streams (absent from runs before them): snapshot sizes and times."""
    if 'snapshots' not in r:
        return []
    stores = [name for name in ('folder', 'Redis') if any(name in f for f in r['snapshots'].values())]
    rows = ['## Durable streams: state snapshots', '',
            'One sequence\'s state after the first frames of MOT17-05 (640x480, real frames): '
            'its snapshot (`snapshot.dumps` of `session.snapshot()`), written to each state store '
            'under a lease, read back and restored into a new session; medians. ByteTrack has '
            'the real COCO person detector (real tracks); the others are MMTracking\'s '
            'real-size configs with seeded random weights: their template and reference memories '
            'are full size, their tracks whatever random weights find. '
            f'Redis: {r.get("redis")}.', '',
            '| model | task | frames | tracks | snapshot MiB | dumps ms | '
            + ' | '.join(f'{s} save ms | {s} load + restore ms' for s in stores) + ' |',
            '|---|---|---:|---:|---:|---:|' + '---:|---:|' * len(stores)]
    for label, f in r['snapshots'].items():
        tracks = '' if f['tracks'] is None else f['tracks']
        rows.append(f'| {label} | {f["task"]} | {f["frames"]} | {tracks} | {f["mib"]:.3f} | '
                    f'{f["dumps_ms"]:.1f} | '
                    + ' | '.join(f'{f[s]["save_ms"]:.1f} | {f[s]["load_ms"]:.1f}' for s in stores) + ' |')
    latency = r.get('chunk_latency')
    if latency:
        memory = latency['memory only']
        rows += ['', 'A 15-frame chunk of the demo model served (`mmtrack-serve stream`\'s lossless '
                 'chunks, the whole short video as one sequence), median seconds per chunk, the '
                 'variants taking turns:', '', '| state | s / chunk | / memory only |', '|---|---:|---:|']
        for label, seconds in latency.items():
            rows.append(f'| {label} | {seconds:.3f} | {seconds / memory:.3f} |')
    return rows + ['']


def _throughput(r):
    rows = ['## 6. One worker vs two', '',
            f'4 requests of a {_video(r["videos"]["throughput"])} demo video, two at a time; '
            'aggregate videos per minute.', '',
            '| workers | torch threads each | videos / min | / 1 worker |', '|---:|---:|---:|---:|']
    t = r['throughput']
    one = t['demo']['videos_per_minute']
    for entry in t.values():
        rows.append(f'| {entry["workers"]} | {entry["threads"]} | {entry["videos_per_minute"]:.1f} '
                    f'| {entry["videos_per_minute"] / one:.2f} |')
    return rows + ['']


def _gains(r):
    rows = ['## Gains beyond the baseline design', '',
            'In-process seconds per video, before and after each change, from the runs above.', '',
            '| change | model | before s | after s | speed-up |', '|---|---|---:|---:|---:|']
    cases = [
        ('demo_in_process', 'demo, 640x480', [
            ('detector batch 4 vs frame by frame (inline I/O)', PLAIN, BATCH4_ONLY),
            ('background I/O vs inline (detector batch 4)', BATCH4_ONLY, DEFAULT),
            ('the default (automatic batch: 4 here, background I/O) vs neither', PLAIN, DEFAULT)]),
        ('demo_in_process_1_thread', 'demo, 640x480, 1 torch thread', [
            ('background I/O vs inline (frame by frame)', PLAIN, BACKGROUND_ONLY)]),
        ('real_in_process', 'SORT R50-FPN, 1080p', [
            ('detector batch 4 vs frame by frame (background I/O)', DEFAULT, BATCH4),
            ('the default (automatic batch: 1 here, background I/O) vs neither', PLAIN, DEFAULT)]),
    ]
    for key, label, pairs in cases:
        p = r[key]
        for change, before, after in pairs:
            rows.append(f'| {change} | {label} | {p[before]:.2f} | {p[after]:.2f} | '
                        f'{p[before] / p[after]:.2f}x |')
    t = r['throughput']
    shared, default = t['demo_2workers']['videos_per_minute'], t['demo_2workers_2threads']['videos_per_minute']
    rows.append(f'| torch threads shared among 2 workers (1 each) vs torch\'s default (2 each) '
                f'| demo, videos/min | {default:.1f} | {shared:.1f} | {shared / default:.2f}x |')
    rows.append('')
    for kind, label in (('demo', 'demo model'), ('real', 'real-size SORT')):
        ident = r[f'{kind}_batching_identity']
        rows.append(f'Detector batch 4 against frame by frame, {label} ({ident["frames"]} frames): '
                    f'{ident["objects"]} objects '
                    f'(score_thr 0), {ident["id_mismatches"]} track-id or count mismatches, boxes '
                    f'within {ident["max_box_diff_px"]:.1e} px.')
    return rows + ['']


def _method():
    return [
        '## How it is measured', '',
        '- One process runs every in-process figure with torch at one thread per core, as '
        'a single worker gets; TorchServe workers are idle meanwhile. The served figures run '
        'while that process waits on HTTP.',
        '- Variants are interleaved (A B C, A B C, ...) so drift on the machine hits each alike.',
        '- Nothing in `make test` asserts a time; these figures are the record.',
        '- Inputs are made once per machine into ~/.cache/mmtrack-serve/bench; nothing is '
        'downloaded.',
    ]
