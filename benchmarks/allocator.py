"""The cold CLI: `mmtrack-serve run` in a fresh process, as a user runs it, with
each memory allocator. Seconds for the whole command (imports, model load,
decode, track, encode) and the process's peak RSS.

Allocators: glibc's defaults (MMTRACK_SERVE_MALLOC_TUNING=0), glibc with
mmtrack-serve's settings (``tuning.MALLOC_SETTINGS``, the default), and
jemalloc preloaded, where the machine has it (Debian's libjemalloc2).

Run alone to choose among them on several models:
    .venv/bin/python benchmarks/allocator.py --models demo sort deepsort selsa masktrack
or to see one model's spread of peak RSS:
    .venv/bin/python benchmarks/allocator.py --models deepsort --allocators defaults tuned --repeats 5
or to try a setting against them (here the 256 MiB top pad tuning.py set until it raised
DeepSORT's peak RSS):
    .venv/bin/python benchmarks/allocator.py --models deepsort sort --allocators defaults tuned --variant pad256:MALLOC_TOP_PAD_=268435456 --repeats 3
"""
import argparse
import ctypes.util
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

GLIBC = 'glibc defaults'
TUNED = 'glibc tuned (default)'
JEMALLOC = 'jemalloc (LD_PRELOAD)'
ALLOCATORS = (GLIBC, TUNED, JEMALLOC)
SHORT_NAMES = {'defaults': GLIBC, 'tuned': TUNED, 'jemalloc': JEMALLOC}     # for --allocators

# name: (config, frames of the 1080p clip or None for the synthetic video).
# Random-weight DeepSORT and SELSA take 10-15 s a frame on 2 cores (DeepSORT's
# ReID runs on each of 300 random boxes): a few frames each.
MODELS = {
    'demo': (None, None),
    'sort': (common.REAL_CONFIG, 8),
    'deepsort': ('deepsort_faster-rcnn_fpn_4e_mot17-private-half', 3),
    'selsa': ('selsa_faster_rcnn_r50_dc5_1x_imagenetvid', 3),
    'masktrack': ('masktrack_rcnn_r50_fpn_12e_youtubevis2019', 4),
}


def jemalloc_path():
    found = ctypes.util.find_library('jemalloc')
    candidates = ([found] if found and found.startswith('/') else []) + sorted(
        glob.glob('/usr/lib/*-linux-gnu/libjemalloc.so.2') + glob.glob('/usr/lib/libjemalloc.so.2'))
    return candidates[0] if candidates else None


def parse_variant(spec):
    """'LABEL:VAR=VALUE[,VAR=VALUE...]' -> (label, {VAR: VALUE}): one more
    allocator, glibc tuned with these on top (--variant), a setting tried
    against the others before it goes into tuning.MALLOC_SETTINGS."""
    label, _, assignments = spec.partition(':')
    pairs = [a.partition('=') for a in assignments.split(',') if a]
    if not label or not pairs or any(not k.startswith('MALLOC_') or not v for k, _, v in pairs):
        raise argparse.ArgumentTypeError(
            f'{spec!r}: expected LABEL:MALLOC_VAR=VALUE[,MALLOC_VAR=VALUE...]')
    return label, {k: v for k, _, v in pairs}


def allocator_env(name, variants=None):
    """The environment for one allocator (one of ALLOCATORS or a label of
    ``variants``, {label: {MALLOC_* variable: value}}), or None where the
    machine lacks it."""
    from mmtrack_serve.tuning import MALLOC_TUNING_ENV
    env = {k: v for k, v in os.environ.items()
           if k != 'LD_PRELOAD' and not k.startswith('MALLOC_')}
    env.pop(MALLOC_TUNING_ENV, None)
    if name in (variants or {}):
        env.update(variants[name])
    elif name == GLIBC:
        env[MALLOC_TUNING_ENV] = '0'
    elif name == JEMALLOC:
        path = jemalloc_path()
        if path is None:
            return None
        env.update({'LD_PRELOAD': path, MALLOC_TUNING_ENV: '0'})
    return env


# Runs the command in a small process and writes its exit code and peak RSS
# (KiB) to argv[1]. A child exec'ed straight from the bench inherits, as its
# own ru_maxrss, the bench's peak: Linux keeps the larger of the two across
# exec (signal->maxrss), and the bench holds GBs of models. This one's is small.
_PEAK_RSS_OF = """
import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], 'w') as f:
    json.dump([os.waitstatus_to_exitcode(status), usage.ru_maxrss], f)
"""


def run_cold(command, env):
    """(seconds, peak RSS MiB) of ``command`` in a fresh process (its own
    rusage, from wait4 in a small parent: see _PEAK_RSS_OF)."""
    with tempfile.TemporaryFile() as stderr, tempfile.NamedTemporaryFile('r', suffix='.json') as answer:
        start = time.perf_counter()
        subprocess.run([sys.executable, '-c', _PEAK_RSS_OF, answer.name, *map(str, command)],
                       env=env, stdout=subprocess.DEVNULL, stderr=stderr, check=False)
        seconds = time.perf_counter() - start
        returncode, peak_kib = json.loads(answer.read() or '[-1, 0]')
        if returncode:
            stderr.seek(0)
            last = stderr.read().decode(errors='replace').strip().splitlines()[-1:]
            raise RuntimeError(f'{" ".join(map(str, command))} failed ({returncode}): {last}')
    return seconds, peak_kib / 1024


def first_frames(video, frames):
    """The first ``frames`` frames of ``video`` as an H.264 mp4 (made once, cached)."""
    from mmtrack_serve.video import VideoReader, VideoWriter
    path = common.CACHE / 'videos' / f'{Path(video).stem}_first{frames}.mp4'
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix('.partial.mp4')
    with VideoReader(video) as reader:
        info = reader.info()
        with VideoWriter(str(partial), info['width'], info['height'], info['fps']) as writer:
            for index, frame in enumerate(reader):
                if index == frames:
                    break
                writer.write(frame)
    partial.rename(path)
    return path


def cli_command(config, checkpoint, video, workdir):
    return [sys.executable, '-m', 'mmtrack_serve.cli', 'run', str(config),
            '--checkpoint', str(checkpoint), '--input', str(video),
            '--output', str(Path(workdir) / 'cold.mp4'), '--quiet']


def model_inputs(name, demo_files=None, demo_video=None):
    """(config, checkpoint, video, frames) of a MODELS entry."""
    config, frames = MODELS[name]
    if config is None:
        demo_config, demo_checkpoint = demo_files or common.demo_model_files()[:2]
        return demo_config, demo_checkpoint, demo_video or common.synthetic_video(10), None
    config, checkpoint = common.random_weights(config)
    clip, _ = common.real_clip()
    return config, checkpoint, first_frames(clip, frames), frames


def cold_cli(models, repeats, demo_files=None, demo_video=None, allocators=ALLOCATORS,
             variants=None):
    """{model: {'frames', 'video', allocator: {'seconds', 'peak_rss_mib'} or
    {'missing': why}}}: each of ``allocators``' median over ``repeats`` runs,
    interleaved round-robin, after one untimed run (the page cache); then
    each of ``variants`` (see parse_variant) the same way."""
    allocators = [*allocators, *(variants or {})]
    results = {}
    with tempfile.TemporaryDirectory(prefix='mmtrack-serve-bench-') as workdir:
        for name in models:
            config, checkpoint, video, frames = model_inputs(name, demo_files, demo_video)
            command = cli_command(config, checkpoint, video, workdir)
            envs = {a: allocator_env(a, variants) for a in allocators}
            runs = {a: [] for a in allocators if envs[a] is not None}
            run_cold(command, allocator_env(TUNED))  # untimed: the page cache
            for _ in range(repeats):
                for allocator in runs:
                    runs[allocator].append(run_cold(command, envs[allocator]))
            row = {'video': Path(video).name, 'frames': frames or 'all'}
            for allocator in allocators:
                if allocator not in runs:
                    row[allocator] = {'missing': 'libjemalloc.so.2 not found (Debian: libjemalloc2)'}
                    continue
                row[allocator] = {
                    'seconds': statistics.median(s for s, _ in runs[allocator]),
                    'peak_rss_mib': statistics.median(m for _, m in runs[allocator]),
                    # peak RSS varies from run to run (DeepSORT's by hundreds of MiB): each is kept
                    'runs': [[round(s, 2), round(m)] for s, m in runs[allocator]]}
            results[name] = row
            print(f'cold CLI, {name}: ' + ', '.join(
                f'{a}: {row[a]["seconds"]:.2f} s, {row[a]["peak_rss_mib"]:.0f} MiB'
                for a in allocators if 'seconds' in row[a]), flush=True)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--allocators', nargs='+', default=list(SHORT_NAMES), choices=SHORT_NAMES)
    parser.add_argument('--variant', action='append', default=[], type=parse_variant,
                        metavar='LABEL:MALLOC_VAR=VALUE,...',
                        help='one more allocator: glibc tuned with these variables on top '
                             '(a variable set here wins over tuning.MALLOC_SETTINGS)')
    parser.add_argument('--output', default=str(common.OUT / 'allocator.json'))
    args = parser.parse_args(argv)
    results = cold_cli(args.models, args.repeats,
                       allocators=[SHORT_NAMES[a] for a in args.allocators],
                       variants=dict(args.variant))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1))
    print(f'wrote {args.output}')


if __name__ == '__main__':
    main()
