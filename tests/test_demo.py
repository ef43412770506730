"""`make demo` as a user runs it on a fresh clone: the committed demo model
(demo/), the converter, a real TorchServe, held-out synthetic videos posted
with default options; served MOTA/IDF1 printed and an H.264 result.mp4 written.
A crash anywhere on that path fails here."""
import re
import subprocess

import av
import pytest

from conftest import REPO

pytestmark = pytest.mark.server

# make demo prints the MOTA of every held-out video it posts; the test posts the first two.
VIDEOS = 2
MIN_MOTA = 0.85


def test_make_demo(tmp_path):
    out = tmp_path / 'demo_output'
    proc = subprocess.run(
        ['make', '--no-print-directory', 'demo', f'DEMO_ARGS=--videos {VIDEOS} --output-dir {out}'],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Traceback' not in log, log[-4000:]
    found = re.search(r'served MOTA (\d\.\d+) \(worst video (-?\d\.\d+)\), IDF1 (\d\.\d+) '
                      rf'over {VIDEOS} held-out videos', log)
    assert found, log[-4000:]
    assert float(found.group(1)) >= MIN_MOTA, found.group(0)
    result = out / 'result.mp4'
    with av.open(str(result)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == 'h264'
        assert stream.frames == 30 or sum(1 for _ in container.decode(stream)) == 30
    assert not (out / 'server' / 'tmp').exists() or \
        not list((out / 'server' / 'tmp').glob('mmtrack-serve-*'))
