import importlib.util
import json
import logging
import pickle
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mmtrack_serve import cli
from mmtrack_serve.errors import InputError
from mmtrack_serve.training.mot2coco import IGNORES, USELESS, convert_mot_to_coco
from mmtrack_serve.training.mot_metrics import evaluate_mot

from .shared_data import data_path


def _load(path):
    return json.loads(path.read_text())


@pytest.fixture(scope='module')
def mot17(tmp_path_factory):
    out = tmp_path_factory.mktemp('mot17')
    convert_mot_to_coco(data_path('MOT17-mini'), out, split_train=True, convert_det=True)
    return out


def _frames_on_disk(seq_dir):
    return sorted(int(p.stem) for p in (seq_dir / 'img1').glob('*.jpg'))


def test_mot17_trusts_frames_on_disk(mot17):
    root = data_path('MOT17-mini', 'train')
    coco = _load(mot17 / 'train_cocoformat.json')
    per_video = Counter(img['video_id'] for img in coco['images'])
    for video in coco['videos']:
        assert per_video[video['id']] == len(_frames_on_disk(root / video['name']))
        assert (video['width'], video['height']) != (None, None)
    first = coco['images'][0]
    assert first['frame_id'] == 0 and first['mot_frame_id'] == 1
    assert first['file_name'] == 'MOT17-02-FRCNN/img1/000001.jpg'


def test_mot17_logs_the_seqlength_mismatch(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        convert_mot_to_coco(data_path('MOT17-mini'), tmp_path)
    assert 'seqLength=600' in caplog.text and 'trusting the frames on disk' in caplog.text


def test_mot17_annotations_match_gt_rows(mot17):
    root = data_path('MOT17-mini', 'train')
    coco = _load(mot17 / 'train_cocoformat.json')
    expected = 0
    for video in coco['videos']:
        rows = np.loadtxt(root / video['name'] / 'gt' / 'gt.txt', delimiter=',', ndmin=2)
        kept = ~np.isin(rows[:, 7], USELESS + IGNORES)
        on_disk = np.isin(rows[:, 0], _frames_on_disk(root / video['name']))
        expected += int((kept & on_disk).sum())
    assert len(coco['annotations']) == expected
    assert {a['category_id'] for a in coco['annotations']} == {1}
    assert coco['categories'] == [dict(id=1, name='pedestrian')]
    assert len({a['id'] for a in coco['annotations']}) == expected

    image_video = {img['id']: img['video_id'] for img in coco['images']}
    owner = {}
    for ann in coco['annotations']:
        key = (image_video[ann['image_id']], ann['mot_instance_id'])
        assert owner.setdefault(ann['instance_id'], key) == key
    assert coco['num_instances'] == len(owner)


def test_mot17_half_split(mot17):
    train = _load(mot17 / 'train_cocoformat.json')
    halves = [_load(mot17 / f'half-{h}_cocoformat.json') for h in ('train', 'val')]
    for video in train['videos']:
        n = sum(img['video_id'] == video['id'] for img in train['images'])
        counts = [sum(img['video_id'] == video['id'] for img in half['images'])
                  for half in halves]
        assert counts == [n // 2 + 1, n - n // 2 - 1]
    assert sorted(img['file_name'] for img in halves[0]['images'] + halves[1]['images']) \
        == sorted(img['file_name'] for img in train['images'])
    # frame_id restarts at 0 in each half, mot_frame_id keeps the disk number.
    val_first = halves[1]['images'][0]
    assert val_first['frame_id'] == 0 and val_first['mot_frame_id'] > 1


def test_mot17_half_gt_folders_feed_eval_mot(mot17):
    gt_files = {p.parents[1].name: p for p in (mot17 / 'half-val').glob('*/gt/gt.txt')}
    assert len(gt_files) == 7
    frames = {int(line.split(',')[0]) for line in gt_files['MOT17-02-FRCNN'].read_text().split()}
    assert frames == {4}
    metrics = evaluate_mot(gt_files, gt_files)
    assert metrics['OVERALL']['MOTA'] == 1.0


def test_mot17_detections_pickle(mot17):
    coco = _load(mot17 / 'train_cocoformat.json')
    dets = pickle.loads((mot17 / 'train_detections.pkl').read_bytes())['det_bboxes']
    assert list(dets) == [img['file_name'] for img in coco['images']]
    first = dets['MOT17-02-FRCNN/img1/000001.jpg'][0]
    rows = np.loadtxt(data_path('MOT17-mini', 'train', 'MOT17-02-FRCNN', 'det', 'det.txt'),
                      delimiter=',')
    rows = rows[rows[:, 0] == 1]
    assert first.shape == (len(rows), 5)
    np.testing.assert_allclose(first[:, 2:4], rows[:, 2:4] + rows[:, 4:6])  # x2, y2


def test_mot15_demo_uses_seqlength_and_skips_results(tmp_path, caplog):
    root = data_path('mmtracking_tests', 'demo_MOT15_data')
    with caplog.at_level(logging.INFO):
        assert cli.main(['mot2coco', '-i', str(root), '-o', str(tmp_path)]) == 0
    coco = _load(tmp_path / 'train_cocoformat.json')
    assert [v['name'] for v in coco['videos']] == ['TUD-Campus', 'TUD-Stadtmitte']
    assert len(coco['images']) == 71 + 179  # seqLength, no frames on disk
    gt_rows = sum(len((root / 'train' / s / 'gt' / 'gt.txt').read_text().split())
                  for s in ('TUD-Campus', 'TUD-Stadtmitte'))
    assert len(coco['annotations']) == gt_rows
    # MOT15: columns 7-9 are world coordinates, every row is a visible pedestrian.
    assert {(a['mot_class_id'], a['visibility'], a['mot_conf'])
            for a in coco['annotations']} == {(1, 1.0, 1.0)}
    assert 'results: no seqinfo.ini' in caplog.text
    assert not (tmp_path / 'half-val').exists()


def test_missing_input_is_an_error(tmp_path):
    with pytest.raises(InputError, match='MOT folder not found'):
        convert_mot_to_coco(tmp_path / 'nope', tmp_path / 'out')
    with pytest.raises(InputError, match='no train/ or test/'):
        convert_mot_to_coco(tmp_path, tmp_path / 'out')


def _mmtracking_script():
    spec = importlib.util.find_spec('mmtrack')
    script = spec and Path(spec.origin).parent / '.mim/tools/convert_datasets/mot/mot2coco.py'
    if not script or not script.is_file() or importlib.util.find_spec('mmcv') is None:
        pytest.skip('MMTracking (with mmcv) and its tools/ are not installed')
    return script


def _content(coco):
    """What must match, ignoring ids and video order (MMTracking uses os.listdir)."""
    videos = {v['id']: (v['name'], v['fps'], v['width'], v['height']) for v in coco['videos']}
    images = {img['id']: img for img in coco['images']}
    return (
        sorted(videos.values()),
        sorted((img['file_name'], img['frame_id'], img['mot_frame_id'], img['width'],
                img['height'], videos[img['video_id']][0]) for img in coco['images']),
        sorted((images[a['image_id']]['file_name'], a['mot_instance_id'], tuple(a['bbox']),
                a['area'], a['visibility'], a['mot_conf'], a['mot_class_id'],
                a['category_id'], a['iscrowd']) for a in coco['annotations']),
        coco['num_instances'], coco['categories'])


def test_same_content_as_mmtracking_script(tmp_path):
    """MMTracking's script, run where it can run: seqLength fixed to the frames on
    disk, an empty test/ folder, and placeholder frames (it only lists names)."""
    script = _mmtracking_script()
    root = tmp_path / 'MOT17'
    (root / 'test').mkdir(parents=True)
    for seq in sorted(data_path('MOT17-mini', 'train').iterdir()):
        copy = root / 'train' / seq.name
        shutil.copytree(seq, copy, ignore=shutil.ignore_patterns('*.jpg'))
        frames = sorted(p.name for p in (seq / 'img1').glob('*.jpg'))
        for name in frames:
            (copy / 'img1' / name).touch()
        ini = (copy / 'seqinfo.ini').read_text()
        (copy / 'seqinfo.ini').write_text(re.sub(r'seqLength=\d+', f'seqLength={len(frames)}', ini))
    subprocess.run([sys.executable, str(script), '-i', str(root), '-o', str(tmp_path / 'theirs'),
                    '--split-train', '--convert-det'], check=True, capture_output=True)
    convert_mot_to_coco(root, tmp_path / 'ours', split_train=True, convert_det=True)

    for subset in ('train', 'half-train', 'half-val'):
        theirs, ours = (_load(tmp_path / side / f'{subset}_cocoformat.json')
                        for side in ('theirs', 'ours'))
        assert _content(ours) == _content(theirs), subset
        theirs, ours = (pickle.loads((tmp_path / side / f'{subset}_detections.pkl').read_bytes())
                        for side in ('theirs', 'ours'))
        assert theirs.keys() == ours.keys()
        for name, [boxes] in theirs['det_bboxes'].items():
            np.testing.assert_array_equal(ours['det_bboxes'][name][0], boxes)
    half_gts = sorted(root.glob('train/*/gt/gt_half-val.txt'))
    assert len(half_gts) == 7
    for half_gt in half_gts:
        seq = half_gt.parents[1].name
        assert (tmp_path / 'ours' / 'half-val' / seq / 'gt' / 'gt.txt').read_text() \
            == half_gt.read_text()
