"""`make bench`'s serving figures on one device (scripts/gpu_check.sh runs it on
CUDA): the model alone, in-process and served seconds per video for the demo
model and the real-size SORT, plus ByteTrack YOLOX-X (random weights) on a
1080p video: decode + track + H.264 encode, frames per second.

    python benchmarks/gpu.py --device cuda:0 --output gpu.json

Served figures need TorchServe's Java; without it they are left out, and the
JSON says why.
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import common

YOLOX_X = 'bytetrack_yolox_x_crowdhuman_mot17-private-half'
UNTUNED = 'served, glibc malloc defaults'


def log(message):
    print(f'[gpu bench {time.strftime("%H:%M:%S")}] {message}', flush=True)


def synchronize(device):
    import torch
    if str(device).startswith('cuda'):
        torch.cuda.synchronize(device)


def tracking_fps(model, video, warmup, device):
    """Frames per second of the whole ``track_video`` to an H.264 mp4, after
    one untimed pass over ``warmup`` (kernel choice, CUDA start-up)."""
    import tempfile
    from mmtrack_serve.api import track_video
    with tempfile.TemporaryDirectory(prefix='mmtrack-serve-bench-') as workdir:
        out = Path(workdir) / 'out.mp4'
        track_video(model, warmup, output=out)
        synchronize(device)
        start = time.perf_counter()
        results = track_video(model, video, output=out, keep_frames=False)
        synchronize(device)
        seconds = time.perf_counter() - start
    frames = results['video']['num_frames']
    return {'frames': frames, 'seconds': round(seconds, 3), 'fps': round(frames / seconds, 2)}


def served_figures(models, files, videos, repeats, untuned=False):
    """{model: {name: median seconds}}: served, and in-process in this
    process, interleaved; with ``untuned``, also served by a second server
    whose workers keep glibc's malloc defaults (MMTRACK_SERVE_MALLOC_TUNING=0)."""
    import served as srv
    from mmtrack_serve.converters.mmtrack2torchserve import convert
    from mmtrack_serve.serving.launcher import Server, free_port_base, write_config
    from mmtrack_serve.tuning import MALLOC_TUNING_ENV
    from run import _in_process_run
    store = common.OUT / 'gpu_model_store'
    shutil.rmtree(store, ignore_errors=True)
    for name, (config, checkpoint) in files.items():
        convert(str(config), str(checkpoint), output_folder=store, model_name=name, force=True)
    envs = {'served': {}}
    if untuned:
        envs[UNTUNED] = {MALLOC_TUNING_ENV: '0'}
    servers = {}
    ports = iter(range(18180, 19000, 10))
    try:
        for label, env in envs.items():
            server = Server(common.OUT / f'gpu_server_{len(servers)}',
                            free_port_base(ports), env=env)
            write_config(server.run_dir, store, [f'{n}={n}.mar' for n in files], server.port_base)
            server.start(store)
            servers[label] = server
        for server in servers.values():
            server.wait_ready(list(files), timeout=900)
        figures = {}
        for name in files:
            runs = {}
            for label, server in servers.items():
                srv.post(server, name, videos[name][1])      # warm-up
                runs[label] = (lambda s=server, n=name: srv.post(s, n, videos[n][0]))
            runs[srv.IN_PROCESS] = _in_process_run(models[name], videos[name][0])
            figures[name] = common.interleaved(runs, repeats)
            log(f'served {name}: ' + ', '.join(f'{k} {v:.2f} s' for k, v in figures[name].items()))
        return figures
    finally:
        for server in servers.values():
            server.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda:0')
    parser.add_argument('--repeats', type=int, default=None, help='runs of each (3; 1 with --quick)')
    parser.add_argument('--output', default=str(common.OUT / 'gpu.json'))
    parser.add_argument('--no-served', action='store_true', help='in-process figures only')
    parser.add_argument('--served-untuned', action='store_true',
                        help='also served by workers with glibc\'s malloc defaults, interleaved')
    parser.add_argument('--no-yolox', action='store_true', help='leave out ByteTrack YOLOX-X')
    parser.add_argument('--quick', action='store_true',
                        help='1 run each (unless --repeats) and a 1 s YOLOX-X video (a CPU\'s pace)')
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    import torch
    import inprocess as ip
    from mmtrack_serve.models import load_model
    from mmtrack_serve.quiet import quiet_warnings
    from mmtrack_serve.tuning import tune_malloc
    quiet_warnings()
    tune_malloc()
    results = {'machine': common.machine(), 'device': args.device,
               'device_name': (torch.cuda.get_device_name(args.device)
                               if args.device.startswith('cuda') else 'cpu')}
    demo_config, demo_checkpoint, _ = common.demo_model_files()
    real_config, real_checkpoint = common.real_model_files()
    clip, _ = common.real_clip()
    short = common.synthetic_video(10)
    warmups = {'demo': common.synthetic_video(1),
               'sort': common.synthetic_video(1, (1920, 1080), fps=4)}
    files = {'demo': (demo_config, demo_checkpoint), 'sort': (real_config, real_checkpoint)}
    videos = {'demo': (short, warmups['demo']), 'sort': (clip, warmups['sort'])}
    models = {name: load_model(str(c), str(k), device=args.device) for name, (c, k) in files.items()}
    for name, model in models.items():
        log(f'{name}: model alone vs in-process on {args.device}, {args.repeats} runs each')
        results[f'{name}_in_process'] = ip.overhead(model, *videos[name], args.repeats, [ip.DEFAULT])
    if not args.no_yolox:
        log('ByteTrack YOLOX-X (random weights), 1080p: decode + track + H.264 encode')
        yolox_config, yolox_checkpoint = common.random_weights(YOLOX_X)
        yolox = load_model(str(yolox_config), str(yolox_checkpoint), device=args.device)
        results['bytetrack_yolox_x_1080p'] = tracking_fps(
            yolox, common.synthetic_video(1 if args.quick else 4, size=(1920, 1080)),
            warmups['sort'], args.device)
        del yolox
    if args.no_served:
        results['served'] = 'left out (--no-served)'
    elif shutil.which('java') is None:
        results['served'] = 'left out: no java on PATH (TorchServe needs Java 17+)'
    else:
        log('served: demo and SORT, interleaved with in-process')
        results['served'] = served_figures(models, files, videos, args.repeats, args.served_untuned)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results, indent=1, default=str))
    log(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
