import json
from collections import defaultdict

import av
import cv2
import numpy as np
import pytest

from mmtrack_serve import cli
from mmtrack_serve.training.mot_metrics import evaluate_mot, find_gt_files
from mmtrack_serve.training.synthetic import SynthConfig, generate_video
from mmtrack_serve.training.synthetic_dataset import write_synthetic_dataset

# 16 frames: enough for the encoder to emit packets before the end, where
# timestamp mistakes in the mp4 writer show.
CONFIG = SynthConfig(width=160, height=128, frames=16, fps=5)
VIDEOS = 3


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp('synth')
    write_synthetic_dataset(out, VIDEOS, seed=5, config=CONFIG)
    return out


@pytest.fixture(scope='module')
def coco(world):
    return json.loads((world / 'annotations' / 'cocovid.json').read_text())


def test_layout(world, coco):
    names = [f'video_{i:04d}' for i in range(VIDEOS)]
    assert [v['name'] for v in coco['videos']] == names
    for name in names:
        frames = sorted(p.name for p in (world / 'images' / name).iterdir())
        assert frames == [f'{i:06d}.jpg' for i in range(1, CONFIG.frames + 1)]
        assert (world / 'videos' / f'{name}.mp4').is_file()
    assert sorted(find_gt_files(world / 'mot')) == names
    image = cv2.imread(str(world / 'images' / coco['images'][0]['file_name']))
    assert image.shape == (CONFIG.height, CONFIG.width, 3)


def test_mp4_is_h264_with_every_frame(world):
    path = world / 'videos' / 'video_0001.mp4'
    assert path.read_bytes().find(b'moov') < path.read_bytes().find(b'mdat')  # +faststart
    expected = [f.image for f in generate_video(5, 1, CONFIG)]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == 'h264'
        assert stream.codec_context.pix_fmt == 'yuv420p'
        decoded = [f.to_ndarray(format='bgr24') for f in container.decode(stream)]
    assert len(decoded) == CONFIG.frames
    # Same pictures, in BGR order, up to compression.
    for got, want in zip(decoded, expected):
        assert cv2.PSNR(got, want) > 30


def test_files_match_the_in_memory_world(world, coco):
    """Video i of a seed is the same in memory and on disk, whatever the count."""
    frames = list(generate_video(5, 2, CONFIG))
    video_id = coco['videos'][2]['id']
    images = {img['id']: img for img in coco['images'] if img['video_id'] == video_id}
    anns = [a for a in coco['annotations'] if a['image_id'] in images]
    got = sorted((images[a['image_id']]['frame_id'], a['mot_instance_id'], tuple(a['bbox']),
                  a['visibility'], bool(a['iscrowd']), a['category_id']) for a in anns)
    want = sorted((i, b.instance_id, b.bbox, b.visibility, b.ignore, b.category_id)
                  for i, f in enumerate(frames) for b in f.boxes)
    assert got == want and want
    jpeg = cv2.imread(str(world / 'images' / 'video_0002' / '000001.jpg'))
    assert cv2.PSNR(jpeg, frames[0].image) > 30


def test_cocovid_and_mot_gt_agree(world, coco):
    images = {img['id']: img for img in coco['images']}
    videos = {v['id']: v['name'] for v in coco['videos']}
    from_json = defaultdict(set)
    for a in coco['annotations']:
        img = images[a['image_id']]
        assert a['video_id'] == img['video_id'] and a['area'] == a['bbox'][2] * a['bbox'][3]
        from_json[videos[img['video_id']]].add(
            (img['frame_id'] + 1, a['mot_instance_id'], *a['bbox'],
             0 if a['iscrowd'] else 1, a['category_id'], a['visibility']))
    for name, rows in from_json.items():
        gt = np.loadtxt(world / 'mot' / name / 'gt' / 'gt.txt', delimiter=',', ndmin=2)
        from_txt = {(*map(int, r[:8]), float(r[8])) for r in gt}
        assert from_txt == rows
    assert {img['frame_id'] for img in coco['images']} == set(range(CONFIG.frames))
    assert any(a['iscrowd'] for a in coco['annotations'])


def test_instance_ids_are_dataset_wide(coco):
    owners = defaultdict(set)
    images = {img['id']: img['video_id'] for img in coco['images']}
    for a in coco['annotations']:
        owners[a['instance_id']].add((images[a['image_id']], a['mot_instance_id']))
    assert all(len(o) == 1 for o in owners.values())
    assert sorted(owners) == list(range(coco['num_instances']))


def test_eval_mot_scores_the_gt_as_a_perfect_tracker(world):
    gt_files = find_gt_files(world / 'mot')
    # A tracker that reports only the counted boxes loses nothing on ignored ones.
    counted = {name: (rows := np.loadtxt(path, delimiter=',', ndmin=2))[rows[:, 6] == 1]
               for name, path in gt_files.items()}
    overall = evaluate_mot(gt_files, counted)['OVERALL']
    assert (overall['MOTA'], overall['IDF1'], overall['FP']) == (1.0, 1.0, 0)


def test_cli_synth_one_class(tmp_path, capsys):
    rc = cli.main(['synth', '--out', str(tmp_path), '--videos', '2', '--frames', '3',
                   '--width', '160', '--height', '128', '--seed', '1', '--one-class',
                   '--workers', '2'])
    assert rc == 0
    coco = json.loads((tmp_path / 'annotations' / 'cocovid.json').read_text())
    assert coco['categories'] == [dict(id=1, name='object')]
    assert len(coco['images']) == 6
    assert 'wrote 2 videos' in capsys.readouterr().out


def test_cli_rejects_odd_size_and_used_folder(tmp_path, capsys):
    rc = cli.main(['synth', '--out', str(tmp_path), '--videos', '1', '--frames', '2',
                   '--width', '161'])
    assert rc == 1
    assert 'even' in capsys.readouterr().err
    (tmp_path / 'old.txt').write_text('')
    rc = cli.main(['synth', '--out', str(tmp_path), '--videos', '1', '--frames', '2'])
    assert rc == 1
    assert 'not empty' in capsys.readouterr().err
