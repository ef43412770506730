"""What every benchmark shares: where inputs are cached, the videos and models
measured, the machine they ran on, and a timer that repeats and takes medians.

Inputs are made once per machine into ~/.cache/mmtrack-serve/bench (synthetic
videos, the real-size model's random weights); nothing is downloaded.
"""
import contextlib
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get('MMTRACK_SERVE_CACHE', Path.home() / '.cache' / 'mmtrack-serve')) / 'bench'
OUT = REPO / 'bench_output'
DEMO_CLIP = REPO.parent / 'shared' / 'data' / 'videos' / 'demo.mp4'

# The demo model's synthetic world, at the size the issue names.
SYNTH_SIZE = (640, 480)
SYNTH_FPS = 25
# One real-size MOT model with random weights: MMTracking's SORT, a Faster
# R-CNN R50-FPN detector at 1088x1088 (its MOT17 config), on the real 1080p clip.
REAL_CONFIG = 'sort_faster-rcnn_fpn_4e_mot17-private-half'


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine():
    """A line per fact about where the figures were measured."""
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30
    return {
        'cpu': f'{cpu}, {cpu_count()} cores',
        'memory': f'{mem_gib:.0f} GiB',
        'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none (CPU only)',
        'python': platform.python_version(),
        'torch': f'{torch.__version__}, {torch.get_num_threads()} threads in-process',
        'os': platform.platform(),
        'load average at start': ' '.join(f'{v:.2f}' for v in os.getloadavg()),
        'commit': _git('rev-parse', '--short', 'HEAD') + (' (uncommitted changes)' if _git('status', '--porcelain', '--untracked-files=no') else ''),
    }


def _git(*args):
    try:
        return subprocess.run(['git', *args], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def interleaved(variants, repeats):
    """{name: median seconds} of each ``variants[name]()``, run round-robin
    ``repeats`` times so that drift on the machine hits every variant alike."""
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


@contextlib.contextmanager
def torch_threads(n):
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- inputs ---------------------------------------------------------------------
def synthetic_video(seconds, size=SYNTH_SIZE, fps=SYNTH_FPS, seed=7):
    """An H.264 mp4 of the demo model's synthetic world (moving shapes), made once."""
    from mmtrack_serve.training.synthetic import SynthConfig, generate_video
    from mmtrack_serve.video import VideoWriter
    width, height = size
    path = CACHE / 'videos' / f'synthetic_{width}x{height}_{seconds}s_{fps}fps_seed{seed}.mp4'
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix('.partial.mp4')
    frames = seconds * fps
    config = SynthConfig(width=width, height=height, frames=frames, fps=fps)
    with VideoWriter(str(partial), width, height, fps) as writer:
        for frame in generate_video(seed, 0, config):
            writer.write(frame.image)
    partial.rename(path)
    return path


def demo_model_files():
    """(config, checkpoint, note): the committed demo model (demo/)."""
    from mmtrack_serve.training import demo_model as dm
    config, checkpoint = dm.published_model()
    return config, checkpoint, f'demo model {checkpoint.name}'


def real_model_files():
    return random_weights(REAL_CONFIG)


def random_weights(config_name):
    """(config file, checkpoint): a config with seeded random weights, saved
    once, so every run and every process loads the same model."""
    import torch
    from mmcv.runner import save_checkpoint
    from mmtrack_serve.mmtrack_compat import find_config, load_config, strip_pretrained
    from mmtrack_serve.models import load_model
    stem = find_config(str(config_name)).stem
    folder = CACHE / 'models'
    config, checkpoint = folder / f'{stem}.py', folder / f'{stem}-random-seed0.pth'
    if config.is_file() and checkpoint.is_file():
        return config, checkpoint
    folder.mkdir(parents=True, exist_ok=True)
    cfg = load_config(str(config_name))
    strip_pretrained(cfg.model)
    torch.manual_seed(0)
    model = load_model(cfg)
    partial = checkpoint.with_suffix('.partial')
    save_checkpoint(model.module, str(partial), meta={'CLASSES': tuple(model.classes)})
    cfg.dump(str(config))
    partial.rename(checkpoint)
    return config, checkpoint


def real_clip():
    """The 1080p clip for the real-size model: MMTracking's demo.mp4 when
    ../shared/data has it, else 8 synthetic 1080p frames."""
    if DEMO_CLIP.is_file():
        return DEMO_CLIP, 'demo.mp4 (MMTracking\'s serving demo clip)'
    return synthetic_video(1, size=(1920, 1080), fps=8), 'synthetic 1920x1080, 8 frames'
