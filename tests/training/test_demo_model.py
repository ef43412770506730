"""The published demo model (demo_model.DEFAULT_OUT, in the cache) still tracks the
synthetic world: a few of its held-out videos, as `demo_model` scores them."""
import pytest
import torch

from mmtrack_serve.training import demo_model
from mmtrack_serve.training.synthetic import SynthConfig
from mmtrack_serve.training.synthetic_dataset import write_synthetic_dataset

# The first videos of the held-out world: a subset of the published score.
VIDEOS = 3
MIN_MOTA = 0.85


def shipped_model():
    config = demo_model.DEFAULT_OUT.with_suffix('.py')
    checkpoints = sorted(config.parent.glob(f'{config.stem}-*.pth'))
    if not config.is_file() or not checkpoints:
        pytest.skip(f'no demo model in {config.parent}')
    return config, checkpoints[-1]


def test_shipped_demo_model_tracks_heldout_videos(tmp_path):
    config, checkpoint = shipped_model()
    world = demo_model.HELDOUT_WORLD
    write_synthetic_dataset(tmp_path, VIDEOS, seed=world.seed,
                            config=SynthConfig(frames=world.frames))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see test_train.one_torch_thread
    try:
        metrics, _ = demo_model.evaluate_heldout(config, checkpoint, tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert metrics['OVERALL']['MOTA'] >= MIN_MOTA, metrics
