"""The committed demo model (demo/, demo_model.published_model) still tracks the
synthetic world: a few of its held-out videos, as `demo_model` scores them,
and its published figures (demo/figures.json) name this checkpoint."""
import json

import torch

from mmtrack_serve.training import demo_model
from mmtrack_serve.training.synthetic import SynthConfig
from mmtrack_serve.training.synthetic_dataset import write_synthetic_dataset

# The first videos of the held-out world: a subset of the published score.
VIDEOS = 3
MIN_MOTA = 0.85


def test_committed_demo_model_tracks_heldout_videos(tmp_path):
    config, checkpoint = demo_model.published_model()
    figures = json.loads((config.parent / demo_model.FIGURES_FILE).read_text())
    assert figures['checkpoint'] == checkpoint.name
    assert checkpoint.stat().st_size <= 10 * 2**20
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
    for name, mota in list(figures['MOTA_by_video'].items())[:VIDEOS]:
        assert abs(metrics[name]['MOTA'] - mota) <= 5e-5, (name, metrics[name]['MOTA'], mota)  # rounded
