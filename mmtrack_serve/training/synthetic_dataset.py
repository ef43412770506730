"""Write a synthetic world (``synthetic.py``) to disk as a tracking dataset.

Layout under ``out_dir``:

- ``images/VIDEO/000001.jpg``: the frames (1-based names, as MOTChallenge);
- ``videos/VIDEO.mp4``: the same frames as H.264 (``mmtrack_serve.video.VideoWriter``);
- ``annotations/cocovid.json``: CocoVID for MMTracking's CocoVideoDataset
  (``img_prefix`` = ``out_dir/images``): videos, images with a 0-based
  ``frame_id``, annotations with a dataset-wide ``instance_id`` (0-based, as
  mot2coco numbers them) and the video's own ``mot_instance_id``, ``bbox``
  [x, y, w, h], ``area``, ``category_id``, ``iscrowd`` (1 = ignore region),
  ``visibility``; categories;
- ``mot/VIDEO/gt/gt.txt`` and ``mot/VIDEO/seqinfo.ini``: MOTChallenge ground
  truth, ``frame (1-based), id, x, y, w, h, conf (0 = ignore), class,
  visibility``, for ``eval-mot --gt-dir out_dir/mot``. x, y are the same
  0-based pixels as the CocoVID bbox: MMTracking reads and writes MOT txt
  files without the devkit's 1-based shift, and so does this.

The ground-truth rules are in ``synthetic.py``'s docstring.
"""
import json
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm import tqdm

from ..errors import InputError
from ..video import VideoWriter
from .synthetic import SynthConfig, categories, generate_video

JPEG_QUALITY = 90


@dataclass(frozen=True)
class _Job:
    out_dir: Path
    name: str
    seed: int
    index: int
    config: SynthConfig


def video_name(index):
    return f'video_{index:04d}'


def write_synthetic_dataset(out_dir, videos, seed=0, config=SynthConfig(), workers=1):
    """Write ``videos`` videos of world ``seed``; returns the CocoVID json path."""
    config.validate()
    if videos < 1:
        raise InputError(f'videos must be positive, got {videos}')
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        # Videos left from a larger earlier world would join this one's MOT gt.
        raise InputError(f'{out_dir} is not empty: choose a new folder or remove it')
    jobs = [_Job(out_dir, video_name(i), seed, i, config) for i in range(videos)]
    progress = dict(total=videos, desc='synthetic videos', unit='video')
    if workers > 1:
        # imap keeps the order, so the json does not depend on scheduling.
        with multiprocessing.get_context('spawn').Pool(workers) as pool:
            gt = list(tqdm(pool.imap(_write_video, jobs), **progress))
    else:
        gt = [_write_video(job) for job in tqdm(jobs, **progress)]

    path = out_dir / 'annotations' / 'cocovid.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cocovid(jobs, gt, config)))
    return path


def _write_video(job):
    """Frames, mp4 and MOT gt of one video; returns its boxes, frame by frame."""
    config = job.config
    image_dir = job.out_dir / 'images' / job.name
    mot_dir = job.out_dir / 'mot' / job.name
    for folder in (image_dir, mot_dir / 'gt', job.out_dir / 'videos'):
        folder.mkdir(parents=True, exist_ok=True)
    boxes_per_frame = []
    with VideoWriter(str(job.out_dir / 'videos' / f'{job.name}.mp4'), config.width,
                     config.height, config.fps) as mp4:
        for frame_index, frame in enumerate(generate_video(job.seed, job.index, config)):
            cv2.imwrite(str(image_dir / frame_file(frame_index)), frame.image,
                        [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            mp4.write(frame.image)
            boxes_per_frame.append(frame.boxes)
    (mot_dir / 'gt' / 'gt.txt').write_text(mot_gt_text(boxes_per_frame))
    (mot_dir / 'seqinfo.ini').write_text(
        f'[Sequence]\nname={job.name}\nimDir=../../images/{job.name}\n'
        f'frameRate={config.fps}\nseqLength={config.frames}\n'
        f'imWidth={config.width}\nimHeight={config.height}\nimExt=.jpg\n')
    return boxes_per_frame


def frame_file(frame_index):
    """0-based frame index -> its 1-based MOTChallenge file name."""
    return f'{frame_index + 1:06d}.jpg'


def mot_gt_text(boxes_per_frame):
    lines = [f'{frame_index + 1},{b.instance_id},{x},{y},{w},{h},{0 if b.ignore else 1},'
             f'{b.category_id},{b.visibility:g}'
             for frame_index, boxes in enumerate(boxes_per_frame)
             for b in boxes for x, y, w, h in [b.bbox]]
    return ''.join(f'{line}\n' for line in lines)


def cocovid(jobs, gt, config):
    """The CocoVID dict of written videos (``jobs``) and their boxes (``gt``)."""
    coco = dict(categories=categories(config), videos=[], images=[], annotations=[])
    instance_ids = {}  # (video_id, id in the video) -> dataset-wide instance_id
    for video_id, (job, boxes_per_frame) in enumerate(zip(jobs, gt), 1):
        coco['videos'].append(dict(id=video_id, name=job.name, fps=config.fps,
                                   width=config.width, height=config.height))
        for frame_index, boxes in enumerate(boxes_per_frame):
            image_id = len(coco['images']) + 1
            coco['images'].append(dict(
                id=image_id, video_id=video_id, frame_id=frame_index,
                file_name=f'{job.name}/{frame_file(frame_index)}',
                width=config.width, height=config.height))
            for box in boxes:
                key = (video_id, box.instance_id)
                instance_id = instance_ids.setdefault(key, len(instance_ids))
                coco['annotations'].append(dict(
                    id=len(coco['annotations']) + 1, image_id=image_id, video_id=video_id,
                    instance_id=instance_id, mot_instance_id=box.instance_id,
                    category_id=box.category_id, bbox=list(box.bbox),
                    area=box.bbox[2] * box.bbox[3], iscrowd=int(box.ignore),
                    visibility=box.visibility))
    coco['num_instances'] = len(instance_ids)
    return coco
