"""The shape of the code, checked: task types live in ``tasks/`` (a new one,
plain detection, is one file and a registry line, and serves); the core root
imports no adapter; the handler runs on TorchServe's own steps (its
``HandlerTime`` metric shows); streamed chunks go through the core's frame
loop, so their detector runs batched with the results of frame by frame."""
import ast
import re

import pytest
import requests

from conftest import REPO, make_video
from mmtrack_serve.converters.mmtrack2torchserve import convert
from mmtrack_serve.serving.parity import compare
from mmtrack_serve.serving.protocol import HEADER_END, HEADER_ID, HEADER_START
from mmtrack_serve.serving.stream_client import encode_chunk
from mmtrack_serve.video import VideoReader
from serving import put, running_server

PACKAGE = REPO / 'mmtrack_serve'
ADAPTERS = ('serving', 'handlers', 'converters', 'training', 'commands')
TASK_NAME_BRANCH = re.compile(r"""(==|!=|\bin)\s*[\(\[]?\s*['"](mot|sot|vid|vis|det)['"]""")
CHUNK_FRAMES = 16


def test_no_branch_on_a_task_name_outside_tasks():
    found = []
    for path in PACKAGE.rglob('*.py'):
        if 'tasks' in path.relative_to(PACKAGE).parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if TASK_NAME_BRANCH.search(line.split('#')[0]):
                found.append(f'{path.relative_to(REPO)}:{number}: {line.strip()}')
    assert not found, '\n'.join(found)


def imported_modules(path):
    """Absolute names of what a module imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                base = '.'.join(['mmtrack_serve'] + ([base] if base else []))
            names += [base] + [f'{base}.{alias.name}' for alias in node.names]
    return names


def test_the_core_root_imports_no_adapter():
    forbidden = [f'mmtrack_serve.{name}' for name in ADAPTERS]
    core = [PACKAGE, PACKAGE / 'tasks', PACKAGE / 'trackers']
    for path in [p for folder in core for p in folder.glob('*.py')]:
        for name in imported_modules(path):
            assert not (name == 'ts' or name.startswith('ts.')), f'{path.name} imports {name}'
            assert not any(name == f or name.startswith(f + '.') for f in forbidden), \
                f'{path.name} imports {name}'


@pytest.fixture(scope='module')
def det_files(tiny_model, tiny_files, tmp_path_factory):
    """A plain mmdet detector config (the tiny MOT model's YOLOX on its own) and its weights."""
    import mmcv
    from mmcv.runner import save_checkpoint
    folder = tmp_path_factory.mktemp('det')
    cfg = mmcv.Config.fromfile(str(tiny_files['mot'][0]))
    cfg.model = cfg.model.detector
    config, ckpt = folder / 'tiny_det.py', folder / 'tiny_det.pth'
    cfg.dump(str(config))
    mot = tiny_model('mot')
    save_checkpoint(mot.module.detector, str(ckpt), meta={'CLASSES': tuple(mot.classes)})
    return config, ckpt


def test_a_plain_detector_is_a_task_type(det_files, video):
    from mmtrack_serve import track_video
    from mmtrack_serve.models import load_model
    from mmtrack_serve.tasks import TASK_TYPES, Detection
    assert Detection in TASK_TYPES
    model = load_model(str(det_files[0]), str(det_files[1]))
    assert model.task == 'det' and model.task_type.default_score_thr == 0.3
    results = track_video(model, video, score_thr=0.0)
    objects = [o for f in results['frames'] for o in f['objects']]
    assert results['task'] == 'det' and len(results['frames']) == 8
    assert objects and all(o['track_id'] is None for o in objects)


@pytest.fixture(scope='module')
def server(det_files, tiny_files, tmp_path_factory):
    store = tmp_path_factory.mktemp('architecture_store')
    convert(str(det_files[0]), str(det_files[1]), output_folder=store, model_name='tiny_det')
    # the default detector batch: automatic, by input size (8 of the tiny model's)
    convert(str(tiny_files['mot'][0]), str(tiny_files['mot'][1]), output_folder=store,
            model_name='tiny_mot_auto')
    with running_server(store, tmp_path_factory.mktemp('architecture_run')) as server:
        yield server


def metric(server, name, model):
    text = requests.get(f'{server.metrics_url}/metrics', timeout=10).text
    values = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith(f'{name}{{') and f'"{model}"' in line]
    return values[0] if values else 0.0


@pytest.mark.server
def test_the_detector_task_serves_as_it_runs_locally(server, det_files, video):
    from mmtrack_serve import track_video
    from mmtrack_serve.models import load_model
    r = put(server, 'tiny_det', video, {'output': 'json', 'score_thr': '0'})
    assert r.status_code == 200, r.text
    local = track_video(load_model(str(det_files[0]), str(det_files[1])), video, score_thr=0.0)
    report = compare(r.json(), local)
    assert report.ok, report.table()
    assert metric(server, 'HandlerTime', 'tiny_det') > 0        # BaseHandler.handle's own metric


@pytest.mark.server
def test_a_streamed_chunk_runs_the_detector_batched(server, tiny_model, tmp_path):
    path = make_video(tmp_path / 'long.mp4', num_frames=CHUNK_FRAMES, seed=3)
    frames = list(VideoReader(path))
    passes_before = metric(server, 'DetectorPasses', 'tiny_mot_auto')
    r = put(server, 'tiny_mot_auto', encode_chunk(frames, 12.5, 'lossless'),
            {HEADER_ID: 'batched-chunk', HEADER_START: 'true', HEADER_END: 'true', 'score_thr': '0'})
    assert r.status_code == 200, r.text
    # 16 frames at the tiny model's 128x96 input: two passes of 8, not 16 of one
    assert metric(server, 'DetectorPasses', 'tiny_mot_auto') - passes_before == 2
    assert metric(server, 'FramesProcessed', 'tiny_mot_auto') >= CHUNK_FRAMES
    session = tiny_model('mot').session(score_thr=0.0)
    one_by_one = {'frames': [session.step(frame).to_json() for frame in frames]}
    streamed = r.json()
    assert len(streamed['frames']) == CHUNK_FRAMES
    report = compare(streamed, one_by_one)
    assert report.ok, report.table()
    assert any(f['objects'] for f in streamed['frames'])
