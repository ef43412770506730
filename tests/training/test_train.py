"""`mmtrack-serve train`: a shrunk demo model trained for a few iterations on a
few tiny synthetic videos; its checkpoint must load and track like any other."""
import json
import logging
import zipfile

import pytest
import torch

from mmtrack_serve import cli
from mmtrack_serve.api import track_video
from mmtrack_serve.models import load_model
from mmtrack_serve.training import demo_model
from mmtrack_serve.training import train as train_module
from mmtrack_serve.training.demo_model import CONFIG, data_options
from mmtrack_serve.training.synthetic import SynthConfig
from mmtrack_serve.training.synthetic_dataset import write_synthetic_dataset

FRAMES = 8
# The demo config with an 8x narrower backbone, 16-channel neck and head, and
# a loader without worker processes: one epoch of 8 iterations.
SHRINK = {
    'model.detector.backbone.widen_factor': 0.125,
    'model.detector.neck.in_channels': [32, 64, 128],
    'model.detector.neck.out_channels': 16,
    'model.detector.bbox_head.in_channels': 16,
    'model.detector.bbox_head.feat_channels': 16,
    'data.samples_per_gpu': 4,
    'data.workers_per_gpu': 0,
    'data.persistent_workers': False,
    'total_epochs': 1,
    'lr_config.warmup_iters': 2,
    'log_config.interval': 2,
    # An 8-iteration model's boxes are noise, and on some CPUs one has zero
    # height: a track started on it makes mmtrack's Kalman filter fail (a
    # singular covariance) in the validation hook. No box starts a track here;
    # training, validation (bbox mAP) and checkpoints are still tested.
    'model.tracker.init_track_thr': 1.01,
}


def as_cli_options(options):
    def value(v):
        return '[' + ','.join(map(str, v)) + ']' if isinstance(v, list) else str(v)
    return [f'{key}={value(v)}' for key, v in options.items()]


@pytest.fixture(scope='module')
def worlds(tmp_path_factory):
    root = tmp_path_factory.mktemp('worlds')
    config = SynthConfig(frames=FRAMES)
    write_synthetic_dataset(root / 'train', 4, seed=11, config=config)
    write_synthetic_dataset(root / 'val', 2, seed=12, config=config)
    return root


@pytest.fixture(scope='module')
def one_torch_thread():
    """On a busy small machine (tests running beside TorchServe workers), torch's
    OpenMP threads spin-wait for each other: a step with 2 threads took 10-20x
    longer than with 1. This module's tiny model gains nothing from more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def trained(worlds, tmp_path_factory, one_torch_thread):
    """The work dir of a training through the CLI."""
    work_dir = tmp_path_factory.mktemp('work')
    options = dict(data_options(worlds / 'train', worlds / 'val'), **SHRINK)
    argv = ['train', str(CONFIG), '--work-dir', str(work_dir), '--seed', '0', '--device', 'cpu',
            '--cfg-options', *as_cli_options(options)]
    assert cli.main(argv) == 0
    return work_dir


def test_training_writes_checkpoint_and_log(trained):
    checkpoint = torch.load(trained / 'latest.pth', map_location='cpu', weights_only=False)
    assert checkpoint['meta']['epoch'] == 1 and checkpoint['meta']['iter'] == 8
    assert checkpoint['meta']['CLASSES'] == ('square', 'circle', 'triangle')
    assert 'optimizer' in checkpoint
    # the EMA copies (ema_*) ride along until `publish` strips them
    assert any(k.startswith('ema_') for k in checkpoint['state_dict'])
    log = next(trained.glob('*.log')).read_text()
    assert 'Epoch [1][8/8]' in log and 'Saving checkpoint at 1 epochs' in log
    # the validation hook ran on the val videos
    records = [json.loads(line) for line in next(trained.glob('*.log.json')).open()][1:]
    assert any(r.get('mode') == 'val' and 'mAP' in r for r in records)
    assert (trained / f'{CONFIG.stem}.py').is_file()  # the config as trained


def test_checkpoint_loads_and_tracks(trained, worlds):
    model = load_model(str(trained / f'{CONFIG.stem}.py'), str(trained / 'latest.pth'))
    assert model.task == 'mot'
    assert model.classes == ['square', 'circle', 'triangle']
    results = track_video(model, str(worlds / 'val' / 'videos' / 'video_0000.mp4'),
                          score_thr=0.0)
    assert results['task'] == 'mot' and len(results['frames']) == FRAMES
    assert results['video']['width'] == 320 and results['video']['height'] == 240


def test_checkpoint_converts_to_mar(trained, tmp_path):
    pytest.importorskip('model_archiver')
    from mmtrack_serve.converters.mmtrack2torchserve import convert
    mar = convert(str(trained / f'{CONFIG.stem}.py'), str(trained / 'latest.pth'),
                  output_folder=str(tmp_path), model_name='tiny_synthetic')
    with zipfile.ZipFile(mar) as archive:
        names = archive.namelist()
    assert 'config.py' in names and any(n.endswith('.pth') for n in names)


def test_demo_model_publishes_and_scores(trained, worlds, tmp_path):
    """demo_model's steps after training, on the tiny model: publish, score."""
    published, config = demo_model.publish(trained / 'latest.pth', tmp_path / 'demo')
    assert published.name.startswith('demo-') and config == tmp_path / 'demo.py'
    assert config.read_text() == CONFIG.read_text()
    stripped = torch.load(published, map_location='cpu', weights_only=False)
    assert 'optimizer' not in stripped
    assert not any(k.startswith('ema_') for k in stripped['state_dict'])

    metrics, ms_per_frame = demo_model.evaluate_heldout(
        trained / f'{CONFIG.stem}.py', published, worlds / 'val')
    assert sorted(metrics) == ['OVERALL', 'video_0000', 'video_0001']
    assert metrics['OVERALL']['GT'] > 0 and ms_per_frame > 0


@pytest.mark.parametrize('metrics, expected', [
    (['bbox', 'track'], ['bbox']), ('track', []), (['bbox'], ['bbox'])])
def test_validation_skips_track_on_mot_datasets_without_trackeval(metrics, expected,
                                                                   monkeypatch):
    from mmtrack.datasets import CocoVideoDataset, MOTChallengeDataset
    monkeypatch.setattr(train_module.importlib.util, 'find_spec', lambda name: None)
    logger = logging.getLogger('test')
    mot_dataset = MOTChallengeDataset.__new__(MOTChallengeDataset)  # only its type matters
    assert train_module.validation_metrics(mot_dataset, metrics, logger) == expected
    # CocoVideoDataset scores 'track' itself, with motmetrics
    video_dataset = CocoVideoDataset.__new__(CocoVideoDataset)
    assert train_module.validation_metrics(video_dataset, ['track'], logger) == ['track']


@pytest.mark.parametrize('argv, env, message', [
    (['--launcher', 'pytorch'], {}, 'must run under torchrun'),
    (['--launcher', 'pytorch', '--device', 'cpu'], {'RANK': '0'},
     'must run under torchrun (WORLD_SIZE, MASTER_ADDR, MASTER_PORT are unset)'),
    # under torchrun without --launcher, each rank would train alone into one work dir
    (['--device', 'cpu'], {'TORCHELASTIC_RUN_ID': 'x', 'RANK': '0', 'WORLD_SIZE': '2'},
     'add --launcher pytorch'),
    (['--resume-from', 'missing.pth', '--device', 'cpu'], {}, 'not found: missing.pth'),
])
def test_user_errors(argv, env, message, monkeypatch, capsys, tmp_path):
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'TORCHELASTIC_RUN_ID'):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert cli.main(['train', str(CONFIG), '--work-dir', str(tmp_path), *argv]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU is there: it would train')
def test_cuda_without_gpu_is_a_user_error(capsys, tmp_path):
    assert cli.main(['train', str(CONFIG), '--work-dir', str(tmp_path), '--device', 'cuda']) == 1
    assert 'no CUDA GPU' in capsys.readouterr().err
