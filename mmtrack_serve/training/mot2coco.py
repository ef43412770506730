"""MOTChallenge (MOT15/16/17/20) folders to CocoVID json.

A port of MMTracking 0.14 ``tools/convert_datasets/mot/mot2coco.py`` that
needs no mmcv. Input layout: ``MOT_ROOT/{train,test}/SEQ/{seqinfo.ini,
gt/gt.txt, det/det.txt, img1/}``. Output, in ``OUT_DIR``:

- ``{subset}_cocoformat.json`` for subsets train, test (those present) and,
  with ``split_train``, half-train and half-val (first ``n // 2 + 1`` frames
  of each train sequence, and the rest);
- ``{subset}_detections.pkl`` with ``convert_det``: the public detections as
  ``{'det_bboxes': {file_name: [array (N, 5) x1, y1, x2, y2, score]}}``;
- ``half-{train,val}/SEQ/gt/gt.txt``: the gt rows of each half, a
  MOTChallenge gt folder that ``eval-mot --gt-dir`` takes.

Differences from MMTracking's script, on purpose:

- the frames in ``img1/`` are what count: a sequence cut to a few frames keeps
  a ``seqinfo.ini`` with the full seqLength (MOT17-mini does), and the script
  would assert. Without an image folder, seqLength names the frames;
- the input is never written to: MMTracking writes ``gt/gt_half-*.txt`` next to
  ``gt.txt``, this writes the half gt folders above into ``OUT_DIR``;
- ids (video, image, annotation) start at 1 in each json file, instead of
  running on from one subset's file into the next;
- sub-folders without ``seqinfo.ini`` (e.g. a ``results/`` folder) are skipped;
  missing width, height or frameRate in ``seqinfo.ini`` are read from the
  first image, or left null;
- MOT15 is recognised by 'MOT15' in the path (as in MMTracking) or by its
  10-column gt.txt; its gt rows all count as visible pedestrians.
"""
import configparser
import json
import logging
import pickle
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import InputError

log = logging.getLogger(__name__)

# MOT class ids: 1 pedestrian, 2 person on vehicle, 3 car, 4 bicycle,
# 5 motorbike, 6 non motorized vehicle, 7 static person, 8 distractor,
# 9 occluder, 10 occluder on the ground, 11 occluder full, 12 reflection,
# 13 crowd. Like MMTracking, both groups below are left out of the json.
USELESS = (3, 4, 5, 6, 9, 10, 11)
IGNORES = (2, 7, 8, 12, 13)
CATEGORIES = [dict(id=1, name='pedestrian')]
HALF_SUBSETS = ('half-train', 'half-val')


@dataclass
class MotSequence:
    name: str
    img_dir: str
    frames: List[str]  # image file names, in order
    video: dict  # CocoVID video fields but id
    gt_lines: List[str] = field(default_factory=list)
    gts: Dict[int, List[dict]] = field(default_factory=dict)  # by MOT frame number
    dets: Dict[int, List[list]] = field(default_factory=dict)


def convert_mot_to_coco(mot_root, out_dir, split_train=False, convert_det=False):
    """Convert ``mot_root`` (see module doc); returns the files written."""
    mot_root, out_dir = Path(mot_root), Path(out_dir)
    if not mot_root.is_dir():
        raise InputError(f'MOT folder not found: {mot_root}')
    subsets = [s for s in ('train', 'test') if (mot_root / s).is_dir()]
    if not subsets:
        raise InputError(f'no train/ or test/ folder in {mot_root}')
    if split_train and 'train' in subsets:
        subsets += HALF_SUBSETS
    out_dir.mkdir(parents=True, exist_ok=True)

    written = []
    loaded = {}  # the halves reuse the parsed train sequences
    for subset in subsets:
        source = 'train' if subset in HALF_SUBSETS else subset
        if source not in loaded:
            loaded[source] = [
                load_sequence(d, parse_gt=source != 'test', parse_det=convert_det)
                for d in _sequence_dirs(mot_root / source)]
        sequences = loaded[source]
        if subset in HALF_SUBSETS:
            sequences = [half_of(seq, subset) for seq in sequences]
            written += [_write_gt(seq, out_dir / subset) for seq in sequences]
        coco, detections = _to_cocovid(sequences, convert_det)
        log.info('%s has %d instances', subset, coco['num_instances'])
        written.append(_dump(coco, out_dir / f'{subset}_cocoformat.json'))
        if convert_det:
            written.append(_dump(detections, out_dir / f'{subset}_detections.pkl'))
    return written


def _sequence_dirs(folder):
    dirs = []
    for seq_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (seq_dir / 'seqinfo.ini').is_file():
            dirs.append(seq_dir)
        else:
            log.info('skipping %s: no seqinfo.ini', seq_dir)
    return dirs


def read_seqinfo(seq_dir):
    """The [Sequence] section of ``seq_dir/seqinfo.ini`` as a dict of str."""
    parser = configparser.ConfigParser()
    parser.read(Path(seq_dir) / 'seqinfo.ini', encoding='utf-8')
    if 'Sequence' not in parser:
        raise InputError(f'{seq_dir}/seqinfo.ini has no [Sequence] section')
    return dict(parser['Sequence'])


def load_sequence(seq_dir, parse_gt=True, parse_det=False):
    """A ``MotSequence``: video info, frames (as on disk) and per-frame gt/dets."""
    seq_dir = Path(seq_dir)
    info = read_seqinfo(seq_dir)
    if info.get('name', seq_dir.name) != seq_dir.name:
        raise InputError(f'{seq_dir}/seqinfo.ini names another sequence: {info["name"]}')
    img_dir = info.get('imdir', 'img1')
    frames = _frame_names(seq_dir, img_dir, info)
    width, height = _frame_size(seq_dir / img_dir / frames[0], info) if frames else (None, None)
    fps = info.get('framerate')
    seq = MotSequence(name=seq_dir.name, img_dir=img_dir, frames=frames,
                      video=dict(name=seq_dir.name, fps=int(fps) if fps else None,
                                 width=width, height=height))
    if parse_gt:
        seq.gt_lines = _read_lines(seq_dir / 'gt' / 'gt.txt')
        is_mot15 = 'MOT15' in str(seq_dir) or (
            bool(seq.gt_lines) and len(seq.gt_lines[0].split(',')) == 10)
        seq.gts = parse_gts(seq.gt_lines, is_mot15)
    if parse_det:
        seq.dets = parse_dets(_read_lines(seq_dir / 'det' / 'det.txt'))
    return seq


def _frame_names(seq_dir, img_dir, info):
    ext = info.get('imext', '.jpg')
    folder = seq_dir / img_dir
    on_disk = sorted(p.name for p in folder.glob(f'*{ext}')) if folder.is_dir() else []
    declared = int(info['seqlength']) if 'seqlength' in info else None
    if on_disk:
        if declared is not None and declared != len(on_disk):
            log.info('%s: seqinfo.ini says seqLength=%d, %s/ holds %d frames: '
                     'trusting the frames on disk', seq_dir.name, declared, img_dir,
                     len(on_disk))
        return on_disk
    if declared is None:
        raise InputError(f'{seq_dir}: no frames in {img_dir}/ and no seqLength in seqinfo.ini')
    log.info('%s: no frames in %s/, using seqLength=%d from seqinfo.ini',
             seq_dir.name, img_dir, declared)
    return [f'{i:06d}{ext}' for i in range(1, declared + 1)]


def _frame_size(first_frame, info):
    if 'imwidth' in info and 'imheight' in info:
        return int(info['imwidth']), int(info['imheight'])
    image = cv2.imread(str(first_frame)) if first_frame.is_file() else None
    if image is None:
        log.warning('%s: frame size unknown (no imWidth/imHeight, no image); '
                    'width and height are left null', first_frame.parent.parent.name)
        return None, None
    return image.shape[1], image.shape[0]


def _read_lines(path):
    if not path.is_file():
        raise InputError(f'file not found: {path}')
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def parse_gts(lines, is_mot15):
    """gt.txt lines -> ``{mot_frame_id: [annotation dict]}`` (no ids yet)."""
    outputs = defaultdict(list)
    for line in lines:
        fields = line.split(',')
        frame_id, ins_id = map(int, fields[:2])
        bbox = list(map(float, fields[2:6]))
        if is_mot15:
            conf, class_id, visibility = 1., 1, 1.
        else:
            conf, class_id, visibility = float(fields[6]), int(fields[7]), float(fields[8])
        if class_id in USELESS or class_id in IGNORES:
            continue
        outputs[frame_id].append(dict(
            category_id=1, bbox=bbox, area=bbox[2] * bbox[3], iscrowd=False,
            visibility=visibility, mot_instance_id=ins_id, mot_conf=conf,
            mot_class_id=class_id))
    return outputs


def parse_dets(lines):
    """det.txt lines -> ``{mot_frame_id: [[x1, y1, x2, y2, score]]}``."""
    outputs = defaultdict(list)
    for line in lines:
        fields = line.split(',')
        frame_id = int(fields[0])
        x, y, w, h, score = map(float, fields[2:7])
        outputs[frame_id].append([x, y, x + w, y + h, score])
    return outputs


def mot_frame_id(frame_name):
    return int(Path(frame_name).stem)


def half_of(seq, subset):
    """The first ``n // 2 + 1`` frames (half-train) or the rest (half-val)."""
    split = len(seq.frames) // 2 + 1
    frames = seq.frames[:split] if subset == 'half-train' else seq.frames[split:]
    kept = {mot_frame_id(name) for name in frames}
    return replace(seq, frames=frames,
                   gt_lines=[line for line in seq.gt_lines if int(line.split(',')[0]) in kept])


def _write_gt(seq, gt_root):
    path = gt_root / seq.name / 'gt' / 'gt.txt'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(f'{line}\n' for line in seq.gt_lines))
    return path


def _to_cocovid(sequences, with_dets):
    coco = dict(categories=CATEGORIES, videos=[], images=[], annotations=[])
    detections = dict(det_bboxes={})
    next_instance_id = 0
    for video_id, seq in enumerate(tqdm(sequences, desc='sequences', leave=False), 1):
        coco['videos'].append(dict(id=video_id, **seq.video))
        instance_ids = {}  # MOT id -> dataset-wide instance_id
        for frame_id, name in enumerate(seq.frames):
            file_name = f'{seq.name}/{seq.img_dir}/{name}'
            image_id = len(coco['images']) + 1
            mot_id = mot_frame_id(name)
            coco['images'].append(dict(
                id=image_id, video_id=video_id, file_name=file_name,
                height=seq.video['height'], width=seq.video['width'],
                frame_id=frame_id, mot_frame_id=mot_id))
            for ann in seq.gts.get(mot_id, []):
                if ann['mot_instance_id'] not in instance_ids:
                    instance_ids[ann['mot_instance_id']] = next_instance_id
                    next_instance_id += 1
                coco['annotations'].append(dict(
                    ann, id=len(coco['annotations']) + 1, image_id=image_id,
                    instance_id=instance_ids[ann['mot_instance_id']]))
            if with_dets:
                boxes = np.array(seq.dets.get(mot_id, []), dtype=float).reshape(-1, 5)
                detections['det_bboxes'][file_name] = [boxes]
    coco['num_instances'] = next_instance_id
    return coco, detections


def _dump(obj, path):
    if path.suffix == '.json':
        path.write_text(json.dumps(obj))
    else:
        path.write_bytes(pickle.dumps(obj))
    log.info('wrote %s', path)
    return path
