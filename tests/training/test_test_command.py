"""`mmtrack-serve test`: evaluating saved results (ground truth given as
results must score perfectly) and the ground-truth lookup for 'track'."""
import json

import mmcv
import numpy as np
import pytest

from mmtrack_serve import cli
from mmtrack_serve.training import evaluation, tool_setup
from mmtrack_serve.training.demo_model import CONFIG as SYNTHETIC_CONFIG
from mmtrack_serve.training.mot2coco import convert_mot_to_coco
from mmtrack_serve.training.synthetic import SynthConfig
from mmtrack_serve.training.synthetic_dataset import write_synthetic_dataset

from .shared_data import data_path

def write_test_config(path, dataset):
    """A config: the synthetic demo config with ``dataset`` as data.test."""
    path.write_text(f"_base_ = ['{SYNTHETIC_CONFIG}']\n"
                    f"data = dict(test=dict(_delete_=True, pipeline={{{{_base_.test_pipeline}}}},"
                    f" ref_img_sampler=None, **{dataset!r}))\n")
    return path


def load_dataset(config):
    cfg, _ = tool_setup.load_tool_config(str(config))
    return evaluation.load_test_dataset(cfg)


def gt_as_results(dataset):
    """The dataset's annotations (but ignore and crowd boxes) in mmtrack's
    result format, scores 1: det_bboxes (per class: x1, y1, x2, y2, score)
    and track_bboxes (the same with the instance id first)."""
    det_bboxes, track_bboxes = [], []
    for info in dataset.data_infos:
        dets = [np.zeros((0, 5), np.float32) for _ in dataset.CLASSES]
        tracks = [np.zeros((0, 6), np.float32) for _ in dataset.CLASSES]
        for ann in dataset.coco.imgToAnns.get(info['id'], []):
            if ann.get('iscrowd') or ann.get('ignore'):
                continue
            x, y, w, h = ann['bbox']
            label = dataset.cat2label[ann['category_id']]
            box = np.array([[x, y, x + w, y + h, 1.0]], np.float32)
            dets[label] = np.vstack([dets[label], box])
            tracks[label] = np.vstack([tracks[label], np.hstack([[[ann['instance_id']]], box])])
        det_bboxes.append(dets)
        track_bboxes.append(tracks)
    return dict(det_bboxes=det_bboxes, track_bboxes=track_bboxes)


def run_cli(*argv):
    return cli.main(['test', *map(str, argv)])


def test_bbox_of_ground_truth_is_map_1(tmp_path, capsys):
    data = data_path('mmtracking_tests', 'demo_cocovid_data')
    config = write_test_config(tmp_path / 'cocovid.py', dict(
        type='CocoVideoDataset', classes=('car', 'person'), ann_file=str(data / 'ann.json'),
        img_prefix=str(data)))
    mmcv.dump(gt_as_results(load_dataset(config)), str(tmp_path / 'gt.pkl'))

    assert run_cli(config, '--results', tmp_path / 'gt.pkl', '--eval', 'bbox',
                   '--out-json', tmp_path / 'metrics.json') == 0
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert metrics['bbox']['bbox_mAP'] == pytest.approx(1.0)
    assert metrics['bbox']['bbox_mAP_50'] == pytest.approx(1.0)
    assert 'bbox_mAP: 1.0000' in capsys.readouterr().out


@pytest.fixture(scope='module')
def synthetic_world(tmp_path_factory):
    out = tmp_path_factory.mktemp('world')
    write_synthetic_dataset(out, 3, seed=7, config=SynthConfig(frames=12))
    return out


def test_track_of_ground_truth_is_mota_1(synthetic_world, tmp_path, capsys):
    config = write_test_config(tmp_path / 'synthetic.py', dict(
        type='MOTChallengeDataset', classes=('square', 'circle', 'triangle'),
        ann_file=str(synthetic_world / 'annotations' / 'cocovid.json'),
        img_prefix=str(synthetic_world / 'images')))
    mmcv.dump(gt_as_results(load_dataset(config)), str(tmp_path / 'gt.pkl'))

    # ground truth from the annotations, then from the world's MOT gt files
    for extra in ([], ['--gt-dir', synthetic_world / 'mot']):
        assert run_cli(config, '--results', tmp_path / 'gt.pkl', '--eval', 'track', 'bbox',
                       '--out-json', tmp_path / 'metrics.json', *extra) == 0
        metrics = json.loads((tmp_path / 'metrics.json').read_text())
        assert sorted(metrics['track']) == ['OVERALL', 'video_0000', 'video_0001', 'video_0002']
        overall = metrics['track']['OVERALL']
        assert overall['MOTA'] == pytest.approx(1.0)
        assert overall['IDF1'] == pytest.approx(1.0)
        assert overall['FP'] == 0 and overall['IDs'] == 0
        assert metrics['bbox']['mAP'] == pytest.approx(1.0)
    assert 'tracking ground truth: ' in capsys.readouterr().out


def test_track_finds_mot2coco_half_split_gt(tmp_path):
    """mot2coco writes half-val gt to OUT/half-val/SEQ/gt/gt.txt, where
    MMTracking would look for MOT/train/SEQ/gt/gt_half-val.txt."""
    mot = data_path('mmtracking_tests', 'demo_MOT15_data')
    convert_mot_to_coco(mot, tmp_path / 'annotations', split_train=True)
    config = write_test_config(tmp_path / 'half.py', dict(
        type='MOTChallengeDataset', ann_file=str(tmp_path / 'annotations' /
                                                 'half-val_cocoformat.json'),
        img_prefix=str(mot / 'train')))
    dataset = load_dataset(config)
    names = [name for name, _ in evaluation.video_slices(dataset)]

    gt, source = evaluation.find_track_gt(dataset, names)
    assert source == f'{tmp_path}/annotations/half-val/SEQ/gt/gt.txt'
    assert gt == {n: tmp_path / 'annotations' / 'half-val' / n / 'gt' / 'gt.txt' for n in names}
    metrics = evaluation.evaluate_tracks(dataset, gt_as_results(dataset))
    assert metrics['OVERALL']['MOTA'] == pytest.approx(1.0)


def test_track_prefers_mmtracking_gt_half_files(tmp_path):
    mot = tmp_path / 'MOT'
    seq_gt = mot / 'train' / 'SEQ-1' / 'gt'
    seq_gt.mkdir(parents=True)
    (seq_gt / 'gt_half-val.txt').write_text('2,1,10,10,20,20,1,1,1\n')

    class Dataset:  # what find_track_gt reads of a dataset
        ann_file = str(tmp_path / 'annotations' / 'half-val_cocoformat.json')
        img_prefix = str(mot / 'train')

    gt, source = evaluation.find_track_gt(Dataset(), ['SEQ-1'])
    assert gt == {'SEQ-1': seq_gt / 'gt_half-val.txt'}
    assert source.endswith('train/SEQ/gt/gt_half-val.txt')


@pytest.mark.parametrize('argv, message', [
    (['--eval'], 'expected at least one argument'),
    ([], 'nothing to do'),
    (['--out', 'x.json'], '--out must be a .pkl'),
    (['--results', 'missing.pkl', '--eval', 'bbox'], 'results file not found'),
])
def test_user_errors(argv, message, capsys):
    try:
        code = run_cli(SYNTHETIC_CONFIG, *argv)
    except SystemExit as e:  # argparse
        code = e.code
    assert code != 0
    assert message in capsys.readouterr().err
