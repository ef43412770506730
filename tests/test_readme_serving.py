"""The README's "Serving a model" block, run as written, against the shared
real YOLOX-nano ByteTrack: its bash commands (activate, convert, serve on
8080, `curl -T`, `curl -F`, the parity check, stop) go through bash in a
scratch folder laid out as the repository root the README assumes.

Only the placeholders change: rather than rewriting the commands, the real
files are put where the block's placeholder names point (PLACEHOLDERS), and
`.venv` and `tools` in the scratch folder are links to this checkout's."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO
from mmtrack_serve.serving.launcher import Server, ports_free
from mmtrack_serve.serving.parity import compare
from real_weights import (CHECKPOINT, CONFIG, DEMO_MP4, MISSING, QUIET_OMP, SKIP_REASON, assert_mot_equal,
                          one_torch_thread)
from serving import NO_NETWORK

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(bool(MISSING), reason=SKIP_REASON),
    pytest.mark.skipif(not (REPO / '.venv' / 'bin' / 'activate').is_file(),
                       reason='the README block activates .venv, which this checkout lacks (make setup)'),
    pytest.mark.skipif(shutil.which('curl') is None, reason='the README block needs curl (apt-get install curl)'),
]

README = REPO / 'README.md'
SECTION = '## Serving a model'
# placeholder path in the README's block -> the real file put there
PLACEHOLDERS = {
    'configs/my_bytetrack.py': CONFIG,
    'my_bytetrack.pth': CHECKPOINT,
    'demo.mp4': DEMO_MP4,
}
MODEL = 'bytetrack'          # the block's --model-name (a name, not a file: kept as written)
PORT_BASE = 8080             # the block serves on TorchServe's default ports, 8080-8084


def readme_block():
    """The first ```bash block after the SECTION heading."""
    text = README.read_text()
    start = text.index(SECTION)
    found = re.search(r'```bash\n(.*?)```', text[start:], re.S)
    assert found, f'no bash block under {SECTION!r} in README.md'
    return found.group(1)


def test_the_block_names_what_the_test_relies_on():
    block = readme_block()
    for placeholder in PLACEHOLDERS:
        assert placeholder in block, f'README block no longer names {placeholder}: update PLACEHOLDERS'
    for step in ('. .venv/bin/activate', 'mmtrack2torchserve', 'mmtrack-serve serve', 'curl', '-T', '-F',
                 'tools/torchserve/test_torchserve.py', 'mmtrack-serve stop', f'--model-name {MODEL}'):
        assert step in block, step


@pytest.fixture
def workdir(tmp_path):
    """The repository root as the README's reader has it, with the real model
    and video under the placeholder names."""
    for placeholder, real in PLACEHOLDERS.items():
        target = tmp_path / placeholder
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real, target)
    for name in ('.venv', 'tools'):
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


@pytest.fixture
def state_home(tmp_path_factory):
    """The server's run dir (default ~/.local/state/mmtrack-serve/server-8080)
    goes here: a short path, as TorchServe's worker sockets live in it and a
    unix socket path may not exceed 107 bytes."""
    return tmp_path_factory.mktemp('state')


def bash_env(state_home):
    env = dict(os.environ)
    # the server's run dir under the test's own folder;
    # loopback goes direct, anything else hits a dead proxy; OpenMP threads that
    # do not spin on a busy machine (real_weights.QUIET_OMP; results do not change)
    env.update(XDG_STATE_HOME=str(state_home), no_proxy='127.0.0.1,localhost',
               NO_PROXY='127.0.0.1,localhost', **NO_NETWORK, **QUIET_OMP)
    env.pop('VIRTUAL_ENV', None)
    return env


def test_readme_serving_commands_run_as_written(workdir, state_home):
    if not ports_free(PORT_BASE):
        pytest.skip(f'the README block serves on ports {PORT_BASE}-{PORT_BASE + 4}, and one is taken here')
    block = readme_block()
    script = workdir / 'readme_serving.sh'
    script.write_text('set -e\n' + block)
    env = bash_env(state_home)
    try:
        run = subprocess.run(['bash', str(script)], cwd=str(workdir), env=env, capture_output=True,
                             text=True, timeout=1200)
    finally:
        # stop the server whatever happened (a no-op once the block's own stop ran)
        subprocess.run([str(REPO / '.venv' / 'bin' / 'mmtrack-serve'), 'stop', '--port-base', str(PORT_BASE)],
                       cwd=str(workdir), env=env, capture_output=True, timeout=120)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-6000:]

    # 1. converted; 2. served (READY printed by serve); 4. parity agreed; stopped
    assert (workdir / 'model_store' / f'{MODEL}.mar').is_file()
    assert f'READY: http://127.0.0.1:{PORT_BASE}/predictions/{MODEL}' in run.stdout, log[-3000:]
    assert 'AGREE' in run.stdout, log[-3000:]
    assert f'stopped the server on port {PORT_BASE}' in run.stdout, log[-3000:]
    assert not Server(state_home, PORT_BASE).ping()

    # 3. what curl brought back: the annotated mp4, JSON and MOT txt of the real model
    from mmtrack_serve.api import track_video
    from mmtrack_serve.models import load_model
    from mmtrack_serve.video import probe
    info = probe(workdir / 'result.mp4')
    assert (info['codec'], info['num_frames'], info['width'], info['height']) == ('h264', 8, 1920, 1080)
    with one_torch_thread():
        local = track_video(load_model(str(CONFIG), str(CHECKPOINT)), DEMO_MP4)
    served = json.loads((workdir / 'result.json').read_text())
    report = compare(served, local)
    assert report.ok, report.table()
    assert sum(len(f['objects']) for f in served['frames']) > 0
    assert_mot_equal((workdir / 'result.txt').read_text(), local['frames'])
