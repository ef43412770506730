"""Public detections: MMTracking's "public" MOT configs track the boxes supplied
with a video (MOTChallenge det.txt) instead of their own detector's proposals.
det.txt parsing; the core with a tiny public SORT on real MOT17 frames and their
real det.txt; the CLI; a real TorchServe for a whole video (multipart field
``detections``) and a two-chunk stream; and the one-line errors of configs that
cannot run as given (a base config; a public one without detections)."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import SHARED_DATA, SOT_INIT_BBOX
from mmtrack_serve.detections import det_txt_lines, for_frame, read_det_txt
from mmtrack_serve.errors import ConfigError, InputError

SEQ = SHARED_DATA / 'MOT17-mini' / 'train' / 'MOT17-04-FRCNN'
DET_TXT = SEQ / 'det' / 'det.txt'
needs_mot17 = pytest.mark.skipif(not DET_TXT.is_file(), reason='../shared/data/MOT17-mini absent')
PUBLIC = 'sort_faster-rcnn_fpn_4e_mot17-public-half'
PRIVATE = 'sort_faster-rcnn_fpn_4e_mot17-private-half'
BASE = 'qdtrack_faster-rcnn_r50_fpn_4e_base'


def cli(*args, tool='mmtrack_serve.cli'):
    return subprocess.run([sys.executable, '-m', tool, *map(str, args)], capture_output=True, text=True)


def one_line_error(result):
    """The one error line of a failed command (no traceback)."""
    assert result.returncode != 0, result.stdout
    assert 'Traceback' not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if 'error:' in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


# -- det.txt ---------------------------------------------------------------------------
def test_read_det_txt_as_mmtrack_converts_it():
    text = ('2,-1,10.5,20,30,40,0.9,-1,-1,-1\n'
            '\n'
            '1,-1,1,2,3,4,1\n'
            '2,-1,0,0,5,5,0.25\n')
    dets = read_det_txt(text)
    assert sorted(dets) == [0, 1]                               # 1-based frames, 0-based ids
    assert dets[0].dtype == np.float32 and dets[0].shape == (1, 5)
    np.testing.assert_allclose(dets[0], [[1, 2, 4, 6, 1]])      # x2 = x + w, no shift
    np.testing.assert_allclose(dets[1], [[10.5, 20, 40.5, 60, 0.9], [0, 0, 5, 5, 0.25]])
    for same in (text.encode(), text.encode('utf-8-sig')):
        assert {k: v.tolist() for k, v in read_det_txt(same).items()} == \
            {k: v.tolist() for k, v in dets.items()}
    assert read_det_txt(b'') == {}
    assert for_frame(dets, 7).shape == (0, 5)                   # a frame absent: no boxes
    assert det_txt_lines(text) == {0: ['1,-1,1,2,3,4,1'],
                                   1: ['2,-1,10.5,20,30,40,0.9,-1,-1,-1', '2,-1,0,0,5,5,0.25']}


@needs_mot17
def test_read_det_txt_from_a_path_reads_the_whole_mot17_file():
    dets = read_det_txt(DET_TXT)
    lines = [line for line in DET_TXT.read_text().splitlines() if line.strip()]
    assert sum(len(v) for v in dets.values()) == len(lines)
    first = [float(v) for v in lines[0].split(',')]
    frame = dets[int(first[0]) - 1]
    assert any(np.allclose(row, [first[2], first[3], first[2] + first[4], first[3] + first[5],
                                 first[6]]) for row in frame)


@pytest.mark.parametrize('text, words', [
    ('1,-1,1,2,3,4\n', ['line 1', '6 fields']),
    ('1,-1,1,2,3,4,1\n1,-1,a,2,3,4,1\n', ['line 2', 'not a number']),
    ('0,-1,1,2,3,4,1\n', ['line 1', 'frame number']),
    ('1.5,-1,1,2,3,4,1\n', ['line 1', 'frame number']),
    ('1,-1,1,2,-3,4,1\n', ['line 1', 'negative']),
    ('1,-1,1,2,3,nan,1\n', ['line 1', 'finite']),
])
def test_malformed_det_txt_is_an_input_error_naming_the_line(text, words):
    with pytest.raises(InputError) as error:
        read_det_txt(text, name='det.txt')
    message = str(error.value)
    assert '\n' not in message and message.startswith('det.txt')
    for word in words:
        assert word in message


def test_missing_or_binary_det_txt(tmp_path):
    with pytest.raises(InputError, match='no such detections file'):
        read_det_txt(tmp_path / 'nope.txt')
    with pytest.raises(InputError, match='not a text file'):
        read_det_txt(b'\xff\xfe\x00\x81')


# -- the core --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def public_files(tmp_path_factory):
    from tiny_models import make_tiny_public
    return make_tiny_public(tmp_path_factory.mktemp('public'))


@pytest.fixture(scope='module')
def public_model(public_files):
    from mmtrack_serve.models import load_model
    return load_model(str(public_files[0]), str(public_files[1]))


@pytest.fixture(scope='module')
def mot17_video(tmp_path_factory):
    """MOT17-04's 8 real frames (1920x1080) as an mp4, the frames its det.txt numbers 1-8."""
    path = tmp_path_factory.mktemp('mot17') / 'MOT17-04.mp4'
    frames = sorted((SEQ / 'img1').glob('*.jpg'))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 30, (1920, 1080))
    for frame in frames:
        writer.write(cv2.imread(str(frame)))
    writer.release()
    return path


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def objects_of(results):
    return [[(o['track_id'], o['bbox'], o['score']) for o in f['objects']] for f in results['frames']]


@needs_mot17
def test_a_public_config_tracks_the_supplied_boxes(public_model, mot17_video):
    from mmtrack_serve.api import track_video
    assert public_model.needs_detections
    dets = read_det_txt(DET_TXT)
    del dets[3]                                           # frame 4: nothing supplied
    with pytest.warns(UserWarning, match='name frames up to 1050, the video has 8'):
        results = track_video(public_model, mot17_video, detections=dets, detector_batch=1)
    frames = results['frames']
    assert len(frames) == 8 and frames[3]['objects'] == []
    for frame in frames[:3] + frames[4:]:
        boxes = dets[frame['frame_id']]
        assert frame['objects'], 'every supplied frame has boxes the tracker reports'
        assert len(frame['objects']) <= len(boxes)
        # the RoI head refines the supplied boxes: each result lies on one of them
        for obj in frame['objects']:
            assert max(iou(obj['bbox'], box[:4]) for box in boxes) > 0.7, obj
    ids = [{o['track_id'] for o in f['objects']} for f in frames]
    assert len(ids[0] & ids[1]) > 0.5 * len(ids[0]), 'tracks continue from frame to frame'
    # a det.txt path does the same; the detector batched over frames gives the same tracks
    again = track_video(public_model, mot17_video, detections=DET_TXT, detector_batch=4)
    # (until frame 4, which it supplies: tracks that skip a frame get new ids in SORT)
    assert [[o[0] for o in f] for f in objects_of(again)][:3] == \
        [[o[0] for o in f] for f in objects_of(results)][:3]
    assert {o[0] for o in objects_of(again)[4]} != {o[0] for o in objects_of(results)[4]}


@needs_mot17
def test_session_steps_take_detections_per_frame(public_model, mot17_video):
    from mmtrack_serve.video import VideoReader
    frames = list(VideoReader(mot17_video))[:3]
    dets = read_det_txt(DET_TXT)
    boxes = [for_frame(dets, i) for i in range(3)]
    one = public_model.session()
    stepped = [one.step(frame, b) for frame, b in zip(frames, boxes)]
    many = public_model.session().step_many(frames, per_pass=1, detections=boxes)
    assert [[(o.track_id, o.bbox) for o in r.objects] for r in stepped] == \
        [[(o.track_id, o.bbox) for o in r.objects] for r in many]
    with pytest.raises(InputError, match='one per frame'):
        public_model.session().step_many(frames, detections=boxes[:2])
    with pytest.raises(InputError, match='x1,y1,x2,y2,score'):
        public_model.session().step(frames[0], np.zeros((2, 4)))


def test_no_detections_for_a_public_model_names_the_private_config(public_model, video):
    from mmtrack_serve.api import track_video
    for call in (lambda: track_video(public_model, video),
                 lambda: public_model.session().step(np.zeros((96, 128, 3), np.uint8))):
        with pytest.raises(InputError) as error:
            call()
        message = str(error.value)
        assert '\n' not in message
        assert f'{PUBLIC} tracks public detections' in message and f'use {PRIVATE} instead' in message


def test_detections_for_a_model_that_detects_itself_are_refused(tiny_model, video):
    from mmtrack_serve.api import track_video
    assert not tiny_model('mot').needs_detections
    with pytest.raises(InputError, match='detects objects itself'):
        track_video(tiny_model('mot'), video, detections={0: np.zeros((0, 5), np.float32)})


def test_private_config_for_each_public_config_in_the_wheel():
    from mmtrack_serve.mmtrack_compat import (configs_root, load_config, needs_detections,
                                              private_config_for)
    names = {p.stem for p in configs_root().rglob('*.py') if '_base_' not in p.parts}
    public = sorted(n for n in names if '-public' in n)
    # tracktor mot20-public names a detection file but its test pipeline (the
    # private one it inherits) never loads it: MMTracking runs its own detector
    assert [n for n in public if not needs_detections(load_config(n))] == \
        ['tracktor_faster-rcnn_r50_fpn_8e_mot20-public'] and len(public) == 10
    for name in public:
        private = private_config_for(load_config(name))
        assert private in names and '-private' in private, name
    assert private_config_for(load_config('tracktor_faster-rcnn_r50_fpn_4e_mot17-public-half_search')) \
        == 'tracktor_faster-rcnn_r50_fpn_4e_mot17-private-half'


def test_a_base_config_is_a_config_error_naming_full_ones():
    from mmtrack_serve.models import load_model
    with pytest.raises(ConfigError) as error:
        load_model(BASE)
    message = str(error.value)
    assert f'{BASE} defines no test pipeline' in message and '\n' not in message
    assert 'qdtrack_faster-rcnn_r50_fpn_4e_mot17-private-half' in message


def test_a_search_config_is_a_config_error_naming_its_lists():
    """mmtrack's hyper-parameter search configs hold lists of values to try
    under model.tracker; the tracker itself takes one (a raw TypeError before)."""
    from mmtrack_serve.models import load_model
    search = 'tracktor_faster-rcnn_r50_fpn_4e_mot17-public-half_search'
    with pytest.raises(ConfigError) as error:
        load_model(search)
    message = str(error.value)
    assert 'hyper-parameter search config' in message and '\n' not in message
    assert 'model.tracker.obj_score_thr=[0.4, 0.5, 0.6]' in message
    with pytest.raises(ConfigError, match='defines no test pipeline'):
        load_model(BASE)            # the base-config check still comes first for those


def test_vot2018_tracks_in_ope_mode_without_the_vot_toolkit(tmp_path, video):
    """SiamRPN++'s VOT mode is an evaluation protocol (re-initialised from each
    frame's ground truth, overlaps from the vot toolkit); a video to track runs
    in OPE mode with the config's VOT-tuned parameters."""
    from tiny_models import TINY_SOT
    from mmtrack_serve.mmtrack_compat import load_config
    cfg = load_config('siamese_rpn_r50_20e_vot2018', TINY_SOT[1])
    assert cfg.model.test_cfg.test_mode == 'VOT'
    config, js = tmp_path / 'tiny_vot2018.py', tmp_path / 'vot.json'
    cfg.dump(str(config))
    r = cli('run', config, '--input', video, '--json', js, '--quiet',
            '--init-bbox', ','.join(map(str, SOT_INIT_BBOX)))
    assert r.returncode == 0, r.stderr
    assert len([line for line in r.stderr.splitlines() if 'VOT test mode' in line]) == 1, r.stderr
    frames = json.loads(js.read_text())['frames']
    assert len(frames) == 8
    # OPE reports the target box on frame 0 (VOT mode reports a state code, not a box)
    assert frames[0]['objects'][0]['bbox'] == [float(v) for v in SOT_INIT_BBOX]


# -- the command line ------------------------------------------------------------------
@needs_mot17
def test_run_with_detections(public_files, mot17_video, tmp_path):
    config, ckpt = public_files
    js = tmp_path / 'public.json'
    r = cli('run', config, '--checkpoint', ckpt, '--input', mot17_video, '--detections', DET_TXT,
            '--json', js, '--quiet', '--detector-batch', '1')
    assert r.returncode == 0, r.stderr
    assert 'tracked 8 frames' in r.stdout
    frames = json.loads(js.read_text())['frames']
    assert all(f['objects'] for f in frames)
    dets = read_det_txt(DET_TXT)
    assert all(len(f['objects']) <= len(dets[f['frame_id']]) for f in frames)


def test_run_errors_in_one_line(public_files, video, tmp_path):
    config, ckpt = public_files
    js = tmp_path / 'x.json'
    line = one_line_error(cli('run', config, '--checkpoint', ckpt, '--input', video, '--json', js))
    assert f'use {PRIVATE} instead' in line and '--detections' in line
    bad = tmp_path / 'det.txt'
    bad.write_text('1,-1,1,2,3,4,1\n1,-1,1,2,3\n')
    line = one_line_error(cli('run', config, '--input', video, '--json', js, '--detections', bad))
    assert 'line 2' in line and str(bad) in line
    line = one_line_error(cli('run', BASE, '--input', video, '--json', js))
    assert f'{BASE} defines no test pipeline' in line
    line = one_line_error(cli(BASE, '--output-folder', tmp_path / 'store', '--model-name', 'base',
                              tool='mmtrack_serve.converters.mmtrack2torchserve'))
    assert line.startswith('mmtrack2torchserve: error:') and 'defines no test pipeline' in line
    assert not (tmp_path / 'store' / 'base.mar').exists()


# -- served ----------------------------------------------------------------------------
@pytest.fixture(scope='module')
def server(public_files, tmp_path_factory):
    from mmtrack_serve.converters.mmtrack2torchserve import convert
    from serving import running_server
    store = tmp_path_factory.mktemp('public_store')
    config, ckpt = public_files
    # frame by frame, as chunks are, so whole, streamed and local results are equal
    convert(str(config), str(ckpt), output_folder=store, model_name='tiny_public', detector_batch=1)
    with running_server(store, tmp_path_factory.mktemp('public_run')) as server:
        yield server


def post(server, video, detections=None, **fields):
    import requests
    files = {'data': ('video.mp4', video.read_bytes())}
    if detections is not None:
        files['detections'] = ('det.txt', detections)
    return requests.post(f'{server.inference_url}/predictions/tiny_public', files=files,
                         data=fields, timeout=600)


@pytest.mark.server
@needs_mot17
def test_served_whole_video_and_a_two_chunk_stream(server, public_model, public_files, mot17_video,
                                                   tmp_path):
    from mmtrack_serve.api import track_video
    from serving import put, temp_leftovers
    r = post(server, mot17_video, DET_TXT.read_bytes(), output='json')
    assert r.status_code == 200, r.text
    served = r.json()
    local = track_video(public_model, mot17_video, detections=DET_TXT, detector_batch=1)
    assert served == json.loads(json.dumps(local))         # the model's own output, all of it
    assert all(f['objects'] for f in served['frames'])

    js = tmp_path / 'stream.json'
    r = cli('stream', mot17_video, '--url', f'127.0.0.1:{server.port_base}', '--model', 'tiny_public',
            '--chunk-frames', '4', '--detections', DET_TXT, '--json', js, '--quiet')
    assert r.returncode == 0, r.stderr
    assert 'streamed 8 frames in 2 chunks' in r.stdout
    assert json.loads(js.read_text()) == served           # ids continue across the chunks

    config, ckpt = public_files
    r = cli('parity', mot17_video, config, ckpt, 'tiny_public', '--inference-addr',
            f'127.0.0.1:{server.port_base}', '--detections', DET_TXT)
    assert r.returncode == 0 and 'AGREE' in r.stdout, r.stdout + r.stderr

    # no detections: 400 naming the private config; the worker stays up
    for answer in (post(server, mot17_video, output='json'), put(server, 'tiny_public', mot17_video),
                   put(server, 'tiny_public', mot17_video, {'ts_request_sequence_id': 'cam-1',
                                                           'ts_request_sequence_start': 'true'})):
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body['type'] == 'InputError' and f'use {PRIVATE} instead' in body['message']
    bad = post(server, mot17_video, b'1,-1,1,2,3,4,1\nnot,a,line\n', output='json')
    assert bad.status_code == 400 and 'the detections field line 2' in bad.json()['message']
    assert temp_leftovers(server) == []
    assert post(server, mot17_video, DET_TXT.read_bytes(), output='json').json() == served
