"""The demo model, end to end: synthesize the world, train ByteTrack on a tiny
YOLOX, publish the stripped checkpoint, and score it on held-out videos.

    python -m mmtrack_serve.training.demo_model --cache-dir ~/.cache/mmtrack-serve-demo \\
        --out ~/.cache/mmtrack-serve/demo-model/bytetrack_yolox_tiny_synthetic

Held-out videos come from another world seed than the training ones, and are
tracked as a user would: their H.264 mp4 through ``api.track_video``, scored
with ``mot_metrics.evaluate_mot`` against the world's exact ground truth.
Each step's output is reused when present (the synthetic worlds, a finished
training), so a rerun after a failed evaluation does not retrain; delete
``CACHE_DIR/work`` to train again.

Training takes about 15 minutes on 2 idle CPU cores (0.7 s an iteration). On
a machine busy with other work, run it with ``OMP_NUM_THREADS=1``: torch's
threads spin-wait for each other when they do not each get a core, and an
iteration took 5-10 s with 2 threads where it took 1.3 s with 1.
"""
import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CONFIG = Path(__file__).resolve().parent / 'configs' / 'bytetrack_yolox_tiny_synthetic.py'
# Published outside the repo (a 9 MB binary does not belong in git): trained
# once per machine by `make demo`, then reused.
DEFAULT_OUT = (Path(os.environ.get('MMTRACK_SERVE_CACHE', Path.home() / '.cache' / 'mmtrack-serve'))
               / 'demo-model' / CONFIG.stem)


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


def evaluate_heldout(config, checkpoint, world_dir, score_thr=0.0):
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
    parser.add_argument('--score-thr', type=float, default=0.0,
                        help='score threshold of the evaluated tracks (default: 0, every box '
                             'ByteTrack outputs, as MMTracking evaluates)')
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

    published, config = publish(checkpoint, args.out)
    print(f'published {published} ({published.stat().st_size / 2 ** 20:.1f} MiB), '
          f'config {config}', flush=True)

    metrics, ms_per_frame = evaluate_heldout(config, published, heldout_dir, args.score_thr)
    print(format_table(metrics))
    print(f'{ms_per_frame:.1f} ms per frame (decoding included)')
    return 0


if __name__ == '__main__':
    from ..cli import quiet_warnings
    quiet_warnings()
    parser = argparse.ArgumentParser(prog='python -m mmtrack_serve.training.demo_model',
                                     description=__doc__.split('\n\n')[0])
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
