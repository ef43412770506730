"""The demo model, end to end: synthesize the world, train ByteTrack on a tiny
YOLOX, publish the stripped checkpoint, and score it on held-out videos.

    make demo-model        # = scripts/train_demo_model.sh
    python -m mmtrack_serve.training.demo_model --cache-dir work_dirs/demo_model \\
        [--out demo/bytetrack_yolox_tiny_synthetic]

The published model (``OUT-HASH.pth``, ``OUT.py``) and its held-out figures
(``figures.json``) are committed in the repo's ``demo/``; a retrain prints its
figures beside the ones published before.

Held-out videos come from another world seed than the training ones, and are
tracked as a user would: their H.264 mp4 through ``api.track_video``, scored
with ``mot_metrics.evaluate_mot`` against the world's exact ground truth.
Each step's output is reused when present (the synthetic worlds, a finished
training), so a rerun after a failed evaluation does not retrain; delete
``CACHE_DIR/work`` to train again.

Training takes about 15 minutes on 2 idle CPU cores. On a machine busy with
other work, run it with ``OMP_NUM_THREADS=1``: torch's threads spin-wait for
each other when they do not each get a core, and an iteration with 2 threads
is then several times slower than with 1 (the same effect on served workers:
BENCHMARKS.md, one vs two workers).
"""
import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CONFIG = Path(__file__).resolve().parent / 'configs' / 'bytetrack_yolox_tiny_synthetic.py'
# Committed (8.7 MiB), so that `make demo` on a fresh clone trains nothing;
# `make demo-model` retrains it into the same place.
DEMO_DIR = Path(__file__).resolve().parents[2] / 'demo'
DEFAULT_OUT = DEMO_DIR / CONFIG.stem
# Beside the published files: the held-out figures they were published with.
FIGURES_FILE = 'figures.json'


@dataclass(frozen=True)
class World:
    """One synthetic dataset: ``videos`` videos of ``frames`` frames of world ``seed``."""
    videos: int
    frames: int
    seed: int

    @property
    def folder_name(self):
        return f'seed{self.seed}-{self.videos}x{self.frames}'


# 6,000 training frames. 600 videos of 10 frames instead (more backgrounds and
# shapes in the same frames and time) scored lower on the held-out videos:
# MOTA 0.858 against 0.885.
TRAIN_WORLD = World(videos=200, frames=30, seed=0)
HELDOUT_WORLD = World(videos=10, frames=30, seed=1)


def ensure_world(folder, world):
    """Writes ``world`` into ``folder`` unless a complete one is there."""
    from .synthetic import SynthConfig
    from .synthetic_dataset import write_synthetic_dataset
    folder = Path(folder)
    annotations = folder / 'annotations' / 'cocovid.json'
    if annotations.is_file():
        return annotations
    # Written aside and renamed, so an interrupted run never looks complete.
    partial = folder.with_name(folder.name + '.partial')
    shutil.rmtree(partial, ignore_errors=True)
    write_synthetic_dataset(partial, world.videos, seed=world.seed,
                            config=SynthConfig(frames=world.frames), workers=1)
    partial.rename(folder)
    return annotations


def data_options(train_dir, val_dir):
    """cfg-options pointing the config's datasets at the synthetic worlds."""
    options = {'data.train.ann_file': f'{train_dir}/annotations/cocovid.json',
               'data.train.img_prefix': f'{train_dir}/images/'}
    for split in ('val', 'test'):
        options[f'data.{split}.ann_file'] = f'{val_dir}/annotations/cocovid.json'
        options[f'data.{split}.img_prefix'] = f'{val_dir}/images/'
    return options


def train_once(work_dir, train_dir, val_dir, seed=0, cfg_options=None, config=CONFIG):
    """The last checkpoint of a finished training in ``work_dir``, else trains."""
    from .train import latest_checkpoint, train
    done = Path(work_dir) / 'TRAINED'
    if done.is_file():
        print(f'reusing the finished training in {work_dir} (delete it to train again)', flush=True)
        return latest_checkpoint(work_dir)
    options = data_options(train_dir, val_dir)
    options.update(cfg_options or {})
    checkpoint = train(str(config), work_dir=work_dir, seed=seed, cfg_options=options,
                       device='cpu')
    done.write_text(f'{checkpoint}\n')
    return checkpoint


def publish(checkpoint, out_prefix, config=CONFIG):
    """``OUT_PREFIX-HASH.pth`` (stripped) and ``OUT_PREFIX.py`` (the config)."""
    from .publish import publish_checkpoint
    published = publish_checkpoint(checkpoint, out_prefix)
    config_copy = Path(f'{out_prefix}.py')
    shutil.copyfile(config, config_copy)
    # An older release next to it would be ambiguous for whoever picks "the" demo model.
    for old in published.parent.glob(f'{Path(out_prefix).name}-*.pth'):
        if old != published:
            old.unlink()
    return published, config_copy


def published_model(out_prefix=DEFAULT_OUT):
    """(config, checkpoint) of the published demo model at ``out_prefix``."""
    from ..errors import ConfigError
    config = Path(f'{out_prefix}.py')
    checkpoints = sorted(config.parent.glob(f'{config.stem}-*.pth'))
    if not config.is_file() or not checkpoints:
        raise ConfigError(f'no demo model in {config.parent} ({config.name} and {config.stem}-HASH.pth): '
                          '`make demo-model` trains one (about 15 minutes on 2 cores)')
    return config, checkpoints[-1]


def evaluate_heldout(config, checkpoint, world_dir, score_thr=None):
    """``(metrics, ms_per_frame)``: MOT metrics of every video in
    ``world_dir/videos`` (see ``mot_metrics.evaluate_mot``), and the mean time
    per frame of ``track_video`` (decoding included)."""
    import numpy as np

    from ..api import track_video
    from ..models import load_model
    from .mot_metrics import evaluate_mot, find_gt_files
    model = load_model(str(config), str(checkpoint), device='cpu')
    gt_files = find_gt_files(Path(world_dir) / 'mot')
    results, seconds, frames = {}, 0.0, 0
    for name in gt_files:
        start = time.perf_counter()
        tracked = track_video(model, str(Path(world_dir) / 'videos' / f'{name}.mp4'),
                              score_thr=score_thr)
        seconds += time.perf_counter() - start
        frames += len(tracked['frames'])
        results[name] = np.array(result_rows(tracked), dtype=float).reshape(-1, 7)
    return evaluate_mot(gt_files, results), 1000 * seconds / max(frames, 1)


def result_rows(tracked):
    """``track_video``'s JSON as MOT rows ``frame (1-based), id, x, y, w, h, score``."""
    return [[frame['frame_id'] + 1, obj['track_id'], x1, y1, x2 - x1, y2 - y1, obj['score']]
            for frame in tracked['frames'] for obj in frame['objects']
            for x1, y1, x2, y2 in [obj['bbox']]]


def add_arguments(parser):
    parser.add_argument('--cache-dir', default='work_dirs/demo_model',
                        help='synthetic worlds and the training run (default: %(default)s)')
    parser.add_argument('--out', default=str(DEFAULT_OUT),
                        help='published files: OUT-HASH.pth and OUT.py (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='training seed (default: 0)')
    parser.add_argument('--score-thr', type=float, default=None,
                        help='score threshold of the evaluated tracks (default: the served '
                             'default, 0: every box ByteTrack outputs, as MMTracking evaluates)')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                        help='override config entries for the training')


def main(args):
    from ..mmtrack_compat import parse_cfg_options
    from .mot_metrics import format_table
    cache = Path(args.cache_dir)
    train_dir = cache / f'train-{TRAIN_WORLD.folder_name}'
    heldout_dir = cache / f'heldout-{HELDOUT_WORLD.folder_name}'
    print(f'synthetic worlds in {cache}', flush=True)
    ensure_world(train_dir, TRAIN_WORLD)
    ensure_world(heldout_dir, HELDOUT_WORLD)

    start = time.perf_counter()
    checkpoint = train_once(cache / 'work', train_dir, heldout_dir, seed=args.seed,
                            cfg_options=parse_cfg_options(args.cfg_options))
    print(f'trained in {(time.perf_counter() - start) / 60:.1f} min: {checkpoint}', flush=True)

    figures_path = Path(args.out).parent / FIGURES_FILE
    before = json.loads(figures_path.read_text()) if figures_path.is_file() else None
    published, config = publish(checkpoint, args.out)
    print(f'published {published} ({published.stat().st_size / 2 ** 20:.1f} MiB), '
          f'config {config}', flush=True)

    metrics, ms_per_frame = evaluate_heldout(config, published, heldout_dir, args.score_thr)
    print(format_table(metrics))
    print(f'{ms_per_frame:.1f} ms per frame (decoding included)')
    figures = heldout_figures(metrics, published)
    figures_path.write_text(json.dumps(figures, indent=2) + '\n')
    print(compare_figures(before, figures))
    print(f'figures: {figures_path}')
    return 0


def heldout_figures(metrics, checkpoint):
    """What `make demo-model` records beside the published model."""
    videos = {k: v for k, v in metrics.items() if k != 'OVERALL'}
    worst = min(videos, key=lambda k: videos[k]['MOTA'])
    return {'checkpoint': Path(checkpoint).name,
            'heldout': f'{HELDOUT_WORLD.videos} videos of {HELDOUT_WORLD.frames} frames, world seed '
                       f'{HELDOUT_WORLD.seed}',
            'MOTA': round(float(metrics['OVERALL']['MOTA']), 4),
            'IDF1': round(float(metrics['OVERALL']['IDF1']), 4),
            'worst_video': worst, 'worst_MOTA': round(float(videos[worst]['MOTA']), 4),
            'MOTA_by_video': {k: round(float(v['MOTA']), 4) for k, v in videos.items()}}


def compare_figures(before, after):
    """The new held-out figures beside the ones published before."""
    if before is None:
        return 'no figures were published before this model'
    rows = [f'{"":<12}{"before":>10}{"now":>10}{"change":>10}']
    for key in ('MOTA', 'IDF1', 'worst_MOTA'):
        old, new = before.get(key), after[key]
        change = '' if old is None else f'{new - old:+.4f}'
        rows.append(f'{key:<12}{"-" if old is None else f"{old:.4f}":>10}{new:>10.4f}{change:>10}')
    rows.append(f'(before: {before.get("checkpoint")}, now: {after["checkpoint"]})')
    return '\n'.join(rows)


if __name__ == '__main__':
    from ..quiet import quiet_warnings
    quiet_warnings()
    parser = argparse.ArgumentParser(prog='python -m mmtrack_serve.training.demo_model',
                                     description=__doc__.split('\n\n')[0])
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
