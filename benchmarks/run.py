"""`make bench`: every benchmark in one run, printed and written to BENCHMARKS.md.

    python benchmarks/run.py [--repeats 3] [--output BENCHMARKS.md] [--quick]

In-process figures first (video I/O, tracker step, model alone vs the core
session), then one TorchServe with every served variant loaded (mmtrack-serve's
handler, the MMTracking-style baseline, two-worker models) for the served
figures, memory and throughput. Raw figures go to bench_output/results.json.
--quick (CI's smoke run of this code) writes bench_output/BENCHMARKS-quick.md
and results-quick.json instead: its figures are not for the record.
"""
import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import OUT, REPO  # noqa: E402

DEMO_SERVED_NAMES = ('demo', 'demo_baseline')
REAL_SERVED_NAMES = ('sort', 'sort_baseline')
THROUGHPUT_MODELS = {          # name: (workers, torch threads per worker; 0 = automatic)
    'demo': (1, 0),
    'demo_2workers': (2, 0),
    'demo_2workers_2threads': (2, 2),
}
THROUGHPUT_VIDEOS = 4


def log(message):
    print(f'[{time.strftime("%H:%M:%S")}] {message}', flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeats', type=int, default=5,
                   help='runs of each demo-model figure, medians reported (default 3)')
    p.add_argument('--real-repeats', type=int, default=2,
                   help='runs of each real-size figure (about 20 s each; default 2)')
    p.add_argument('--output', help='report to write (default BENCHMARKS.md; with --quick '
                   'bench_output/BENCHMARKS-quick.md)')
    p.add_argument('--quick', action='store_true',
                   help='a smoke run: 1 repeat, 2 s / 12 s videos; figures not for the record, so '
                        'BENCHMARKS.md is left alone unless --output names it')
    p.add_argument('--port-base', type=int, default=0, help='TorchServe ports (default: first free)')
    p.add_argument('--from-json', metavar='RESULTS', help='only write the report of a saved run')
    args = p.parse_args(argv)
    if args.output is None:
        args.output = str(OUT / 'BENCHMARKS-quick.md' if args.quick else REPO / 'BENCHMARKS.md')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.from_json:
        from report import render
        Path(args.output).write_text(render(json.loads(Path(args.from_json).read_text())))
        log(f'wrote {args.output} from {args.from_json}')
        return 0
    started = time.time()
    from mmtrack_serve.quiet import quiet_warnings
    from mmtrack_serve.tuning import tune_malloc
    quiet_warnings()
    tune_malloc()        # as `mmtrack-serve run` and a served worker do
    import torch
    torch.set_num_threads(common.cpu_count())     # what a single worker gets
    repeats = 1 if args.quick else args.repeats
    real_repeats = 1 if args.quick else args.real_repeats
    short_s, long_s = (3, 12) if args.quick else (10, 120)
    results = {'machine': common.machine(), 'repeats': repeats, 'real_repeats': real_repeats,
               'quick': args.quick}

    log('inputs: synthetic videos and the real-size model (made once, cached in '
        f'{common.CACHE})')
    demo_config, demo_checkpoint, results['demo_model'] = common.demo_model_files()
    real_config, real_checkpoint = common.real_model_files()
    video_short = common.synthetic_video(short_s)
    video_long = common.synthetic_video(long_s)
    video_1080 = common.synthetic_video(4, size=(1920, 1080))
    # two workers at torch's default threads run ~10x slower: a short video keeps that affordable
    video_throughput = common.synthetic_video(3)
    clip, results['real_clip'] = common.real_clip()
    # the first pass at each input shape is slow (oneDNN picks its kernels):
    # every timed path runs once on these first
    warmups = {'demo': common.synthetic_video(1), 'real': common.synthetic_video(1, (1920, 1080), fps=4)}
    results['videos'] = {'short': _describe(video_short), 'long': _describe(video_long),
                         'throughput': _describe(video_throughput),
                         'io_1080p': _describe(video_1080), 'real_clip': _describe(clip)}

    models = in_process(results, demo_config, demo_checkpoint, real_config, real_checkpoint,
                        video_short, video_1080, clip, warmups, repeats, real_repeats)
    import allocator
    cold_models = ['demo'] if args.quick else list(allocator.MODELS)
    log(f'cold CLI: `mmtrack-serve run` in fresh processes ({", ".join(cold_models)}), glibc '
        f'defaults vs tuned vs jemalloc, {min(repeats, 2)} interleaved runs each')
    results['cold_cli'] = allocator.cold_cli(cold_models, min(repeats, 2),
                                             demo_files=(demo_config, demo_checkpoint),
                                             demo_video=video_short)
    import state_store
    with state_store.redis_for_bench() as (redis_url, redis_missing):
        results['redis'] = redis_missing or 'Debian redis-server on 127.0.0.1, no persistence'
        log('stream state: snapshot size, save and load per model, folder'
            f'{" and Redis" if redis_url else f" only ({redis_missing})"}')
        results['snapshots'] = state_store.snapshot_figures(
            redis_url, num_frames=3 if args.quick else 8, repeats=1 if args.quick else 3)
        served(results, models, demo_config, demo_checkpoint, real_config, real_checkpoint,
               video_short, video_long, video_throughput, clip, warmups, repeats, real_repeats,
               args.port_base, redis_url)

    results['seconds'] = time.time() - started
    OUT.mkdir(exist_ok=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    # a quick run leaves the last full run's raw figures (--from-json) alone too
    raw = OUT / ('results-quick.json' if args.quick else 'results.json')
    raw.write_text(json.dumps(results, indent=1, default=str))
    from report import render
    text = render(results)
    print('\n' + text)
    Path(args.output).write_text(text)
    log(f'wrote {args.output} and {raw} in {results["seconds"] / 60:.1f} min')
    return 0


def _describe(path):
    from mmtrack_serve.video import VideoReader
    with VideoReader(path) as reader:
        info = reader.info()
        info['num_frames'] = info['num_frames'] or sum(1 for _ in reader)
    return {'path': str(path), 'width': info['width'], 'height': info['height'],
            'fps': round(info['fps'], 3), 'frames': info['num_frames'],
            'mib': round(Path(path).stat().st_size / 2 ** 20, 2)}


def in_process(results, demo_config, demo_checkpoint, real_config, real_checkpoint,
               video_short, video_1080, clip, warmups, repeats, real_repeats):
    import association
    import inprocess as ip
    from mmtrack_serve.models import load_model

    log('video I/O alone: 640x480 and 1920x1080')
    results['video_io'] = [ip.video_io(video_short), ip.video_io(video_1080)]

    demo = load_model(str(demo_config), str(demo_checkpoint))
    real = load_model(str(real_config), str(real_checkpoint))
    log('tracker step alone: ByteTrack and OC-SORT (on the demo model\'s motion) and SORT (the '
        'real-size model\'s), mmtrack\'s, ours and Roboflow\'s, 10/50/200 detections, 1 thread')
    rounds = min(repeats, 3)
    results['tracker'] = {
        'ByteTrack': association.tracker_hz(demo, repeats=rounds, peer='ByteTrack'),
        'OC-SORT': association.tracker_hz(demo, repeats=rounds, peer='OC-SORT',
                                          tracker_cfg=association.OCSORT_TRACKER),
        'SORT': association.tracker_hz(real, repeats=rounds, peer='SORT')}

    log(f'demo model: model alone vs in-process variants, {repeats} interleaved runs each')
    results['demo_in_process'] = ip.overhead(demo, video_short, warmups['demo'], repeats, [
        ip.PLAIN, ip.BATCH4_ONLY, ip.DEFAULT])
    log('demo model with 1 torch thread (as each of two workers on 2 cores): inline vs background I/O')
    with common.torch_threads(1):
        results['demo_in_process_1_thread'] = ip.overhead(
            demo, video_short, warmups['demo'], min(repeats, 2), [ip.PLAIN, ip.BACKGROUND_ONLY])
    results['demo_batching_identity'] = ip.batching_identity(demo, video_short)
    log(f'real-size SORT: model alone vs in-process, {real_repeats} interleaved runs each '
        '(seconds a frame)')
    results['real_in_process'] = ip.overhead(real, clip, warmups['real'], real_repeats,
                                             [ip.PLAIN, ip.DEFAULT, ip.BATCH4])
    results['real_batching_identity'] = ip.batching_identity(real, warmups['real'])
    return {'demo': demo, 'real': real}


def served(results, models, demo_config, demo_checkpoint, real_config, real_checkpoint, video_short,
           video_long, video_throughput, clip, warmups, repeats, real_repeats, port_base,
           redis_url=None):
    import served as srv
    import state_store
    from mmtrack_serve.converters.mmtrack2torchserve import convert
    from mmtrack_serve.serving.launcher import Server, free_port_base, write_config
    from mmtrack_serve.video import probe

    store = OUT / 'model_store'
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(OUT / 'server', ignore_errors=True)
    log(f'archives into {store}')
    for name, (workers, threads) in THROUGHPUT_MODELS.items():
        convert(str(demo_config), str(demo_checkpoint), output_folder=store, model_name=name,
                force=True, workers=workers, torch_threads=threads)
    convert(str(real_config), str(real_checkpoint), output_folder=store, model_name='sort',
            force=True)
    # streams: the same demo model with its state in memory only, and in Redis
    stream_models = {'demo': 'folder (default)', 'demo_memory': 'memory only'}
    convert(str(demo_config), str(demo_checkpoint), output_folder=store, model_name='demo_memory',
            force=True, state_store='none')
    if redis_url:
        convert(str(demo_config), str(demo_checkpoint), output_folder=store,
                model_name='demo_redis', force=True, state_store=redis_url)
        stream_models['demo_redis'] = 'Redis'
    srv.archive_baseline(demo_config, demo_checkpoint, store, 'demo_baseline')
    srv.archive_baseline(real_config, real_checkpoint, store, 'sort_baseline')

    base = port_base or free_port_base(range(18180, 19000, 10))
    server = Server(OUT / 'server', base)
    names = list(THROUGHPUT_MODELS) + ['demo_baseline', 'sort', 'sort_baseline'] \
        + [name for name in stream_models if name not in THROUGHPUT_MODELS]
    write_config(server.run_dir, store, [f'{n}={n}.mar' for n in names], base)
    log(f'TorchServe on {server.inference_url} with {len(names)} models (logs: {server.log_dir})')
    server.start(store)
    try:
        server.wait_ready(names, timeout=900)
        log('warm-up: one short video to every worker')
        for name in names:
            workers = THROUGHPUT_MODELS.get(name, (1, 0))[0]
            warmup = warmups['real' if name.startswith('sort') else 'demo']
            srv.concurrent_posts(server, name, warmup, count=workers, clients=workers)
        # the in-process default runs again here, between the requests, so that
        # served / in-process compares runs minutes apart at most, not ten
        log(f'served: demo model and baseline, interleaved with in-process, {repeats} runs each')
        results['demo_served'] = srv.served_seconds(server, DEMO_SERVED_NAMES, video_short, repeats,
                                                    in_process=_in_process_run(models['demo'], video_short))
        log(f'served: real-size SORT and baseline, interleaved with in-process, {real_repeats} runs each')
        results['real_served'] = srv.served_seconds(server, REAL_SERVED_NAMES, clip, real_repeats,
                                                    in_process=_in_process_run(models['real'], clip))
        results['codecs'] = {name: probe(srv.post(server, name, video_short))['codec']
                             for name in DEMO_SERVED_NAMES}

        log(f'memory: worker peak RSS for the {_seconds(video_short)} s and '
            f'{_seconds(video_long)} s videos')
        results['memory'] = {
            'short': srv.peak_rss_mib(server, 'demo', video_short),
            'long': srv.peak_rss_mib(server, 'demo', video_long),
        }

        live_figures(results, server, video_short)
        log(f'stream state: {state_store.CHUNK_FRAMES}-frame chunks, state in '
            f'{", ".join(stream_models.values())}, {repeats} interleaved streams each')
        latency = state_store.chunk_latency(server, list(stream_models), video_short,
                                            repeats=repeats)
        results['chunk_latency'] = {label: latency[name] for name, label in stream_models.items()}

        log(f'throughput: {THROUGHPUT_VIDEOS} videos, 2 at a time, on 1 and 2 workers')
        results['throughput'] = {}
        for name, (workers, threads) in THROUGHPUT_MODELS.items():
            results['throughput'][name] = {
                'workers': workers,
                'threads': threads or max(1, common.cpu_count() // workers),
                'videos_per_minute': srv.videos_per_minute(server, name, video_throughput,
                                                           THROUGHPUT_VIDEOS, clients=2)}
    finally:
        server.stop()
        log('TorchServe stopped')


def live_figures(results, server, video):
    """`mmtrack-serve stream` on the demo model: latency from a live source
    (``video``'s frames as H.264 without B-frames, sent at real time by UDP)
    per chunk size, and a file streamed against the same file posted whole."""
    import live_latency as live
    import served as srv
    from live_sources import h264_clip
    from mmtrack_serve.video import VideoReader
    source = common.CACHE / 'videos' / f'live_{Path(video).name}'
    if not source.is_file():
        with VideoReader(video) as reader:
            h264_clip(source, list(reader), reader.fps, keyint=25)
    log(f'live: capture-to-result latency, chunks of {", ".join(map(str, live.CHUNK_SIZES))} frames')
    results['live_latency'] = live.live_latency(server, 'demo', source)
    log('live: a file streamed in 30-frame chunks vs posted whole')
    results['streamed_over_whole'] = live.streamed_over_whole(server, 'demo', video, srv.post)


def _in_process_run(model, video):
    from inprocess import DEFAULT, session_variants
    workdir = OUT / 'in_process'
    workdir.mkdir(parents=True, exist_ok=True)
    return session_variants(model, video, workdir, [DEFAULT])[DEFAULT]


def _seconds(video):
    info = _describe(video)
    return round(info['frames'] / info['fps'])


if __name__ == '__main__':
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')
    sys.exit(main())
