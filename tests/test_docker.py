"""Opt-in: the mmtrack-serve image (docker/serve/Dockerfile) run as the README
runs it. A tiny MOT model converted with mmtrack2torchserve into a store on
this machine, the store bind-mounted into the container, ports published on
127.0.0.1, a video sent with curl, an H.264 mp4 back; token authorization on
(a request without the inference key is refused) and switched off by
TS_DISABLE_TOKEN_AUTH=true. Every container is removed afterwards. And the
README's (MMTracking's) build command as written, `docker build -t
mmtrack-serve:latest docker/serve/` from the repository root (podman here):
it builds the image `make docker` built, and without the staged source it
stops in one line naming `make docker`.

Runs only with MMTRACK_SERVE_DOCKER_TEST=1 and podman (or the engine named by
MMTRACK_SERVE_DOCKER_ENGINE) on the PATH, against the image
MMTRACK_SERVE_DOCKER_IMAGE (default mmtrack-serve:latest). `make docker-test`
sets podman up, builds the image and runs this file (CI's `.ci/run` runs it
where podman can be had).
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import REPO
from mmtrack_serve.serving.launcher import free_port_base

ENGINE = os.environ.get('MMTRACK_SERVE_DOCKER_ENGINE', 'podman')
IMAGE = os.environ.get('MMTRACK_SERVE_DOCKER_IMAGE', 'mmtrack-serve:latest')
STORE_IN_CONTAINER = '/home/model-server/model-store'
START_TIMEOUT_S = 300

pytestmark = [
    pytest.mark.server,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get('MMTRACK_SERVE_DOCKER_TEST'),
                       reason='opt-in: set MMTRACK_SERVE_DOCKER_TEST=1 (or run `make docker-test`) '
                              'to test the container image'),
    pytest.mark.skipif(shutil.which(ENGINE) is None,
                       reason=f'{ENGINE} is not installed (`make docker-test` installs podman '
                              'from Debian when run as root)'),
    pytest.mark.skipif(shutil.which('curl') is None, reason='curl is not installed'),
]


def engine(*args, check=True, timeout=120):
    result = subprocess.run([ENGINE, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f'{ENGINE} {" ".join(args)} exited {result.returncode}: '
                             f'{result.stderr.strip()[-2000:]}')
    return result


def curl(*args):
    """curl -sS ARGS; returns (HTTP status, content type, body unless -o took it)."""
    out = subprocess.run(['curl', '-sS', '--noproxy', '*', '--max-time', '600',
                          '-w', '\n@@curl %{http_code} %{content_type}', *args],
                         capture_output=True, text=True, timeout=660)
    if out.returncode != 0:
        raise ConnectionError(f'curl {" ".join(args)}: {out.stderr.strip()}')
    body, _, status = out.stdout.rpartition('\n@@curl ')
    code, _, content_type = status.strip().partition(' ')
    return int(code), content_type, body


@pytest.fixture(scope='module', autouse=True)
def image_exists():
    if engine('image', 'inspect', IMAGE, check=False).returncode != 0:
        pytest.fail(f'no image {IMAGE} in {ENGINE}: build it with `make docker-test` '
                    f'(or `make docker`)')


@pytest.fixture(scope='module')
def store(tmp_path_factory):
    """A model store holding tiny_mot.mar, converted as a user converts."""
    from tiny_models import make_tiny_checkpoint
    work = tmp_path_factory.mktemp('docker')
    config, ckpt = work / 'tiny_mot.py', work / 'tiny_mot.pth'
    make_tiny_checkpoint('mot', ckpt).dump(str(config))
    store = work / 'store'
    store.mkdir()
    store.chmod(0o755)   # the container's model-server user (uid 1000) reads it
    converter = Path(sys.executable).parent / 'mmtrack2torchserve'
    subprocess.run([str(converter), str(config), str(ckpt), '--output-folder', str(store),
                    '--model-name', 'tiny_mot'], check=True, capture_output=True, timeout=300)
    assert (store / 'tiny_mot.mar').is_file()
    return store


class Container:
    def __init__(self, name, base):
        self.name = name
        self.inference = f'http://127.0.0.1:{base}'
        self.management = f'http://127.0.0.1:{base + 1}'
        self.metrics = f'http://127.0.0.1:{base + 2}'
        self.keys = {}

    def logs(self):
        result = engine('logs', self.name, check=False)
        return (result.stdout + result.stderr)[-6000:]

    def exec(self, *args):
        return engine('exec', self.name, *args, check=False)

    def auth(self, kind):
        return ['-H', f'Authorization: Bearer {self.keys[kind]}'] if kind in self.keys else []


def no_healthcheck():
    if ENGINE == 'podman' and not Path('/run/systemd/system').is_dir():
        # podman runs HEALTHCHECKs through systemd timers; without systemd it
        # only logs that it cannot (the check itself is tested through exec)
        return ['--no-healthcheck']
    return []


@contextmanager
def running_container(store, env=()):
    """`ENGINE run` of the image with the store mounted and the three ports on
    127.0.0.1; waits until tiny_mot has a READY worker; removes it after."""
    base = free_port_base(random.sample(range(20000, 40000, 10), 50))
    name = f'mmtrack-serve-test-{uuid.uuid4().hex[:8]}'
    container = Container(name, base)
    cmd = ['run', '-d', '--name', name,
           '-p', f'127.0.0.1:{base}:8080', '-p', f'127.0.0.1:{base + 1}:8081',
           '-p', f'127.0.0.1:{base + 2}:8082',
           '--mount', f'type=bind,source={store},target={STORE_IN_CONTAINER}']
    for item in env:
        cmd += ['-e', item]
    engine(*cmd, *no_healthcheck(), IMAGE)
    try:
        wait_ready(container, auth=not any(e.startswith('TS_DISABLE_TOKEN_AUTH=true') for e in env))
        yield container
    finally:
        engine('rm', '-f', name, check=False, timeout=180)
        assert engine('container', 'inspect', name, check=False).returncode != 0, \
            f'container {name} was not removed'


def wait_ready(container, auth):
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        state = engine('inspect', '--format', '{{.State.Running}}', container.name, check=False)
        if state.stdout.strip() != 'true':
            raise AssertionError(f'the container stopped:\n{container.logs()}')
        if auth and not container.keys:
            found = container.exec('cat', 'key_file.json')
            if found.returncode == 0 and found.stdout.strip():
                keys = json.loads(found.stdout)
                container.keys = {kind: keys[kind]['key'] for kind in ('inference', 'management')}
        if container.keys or not auth:
            try:
                code, _, body = curl(*container.auth('management'),
                                     f'{container.management}/models/tiny_mot')
                if code == 200 and '"READY"' in body:
                    return
            except ConnectionError:
                pass   # not listening yet
        time.sleep(2)
    raise AssertionError(f'tiny_mot not READY after {START_TIMEOUT_S} s:\n{container.logs()}')


@pytest.fixture(scope='module')
def server(store):
    """The image as it ships: token authorization on."""
    with running_container(store) as container:
        yield container


def probe(path):
    from mmtrack_serve.video import probe as probe_video
    return probe_video(Path(path).read_bytes())


def test_runs_as_model_server_not_root(server):
    assert server.exec('id', '-un').stdout.strip() == 'model-server'
    assert server.exec('id', '-u').stdout.strip() == '1000'


def test_request_without_token_is_refused(server, video, tmp_path):
    body = tmp_path / 'body.json'
    code, _, _ = curl('-o', str(body), '-T', str(video), f'{server.inference}/predictions/tiny_mot')
    assert code == 400 and json.loads(body.read_text())['type'] == 'InvalidKeyException'
    code, _, _ = curl('-o', str(body), '-H', 'Authorization: Bearer wrong-key', '-T', str(video),
                   f'{server.inference}/predictions/tiny_mot')
    assert code == 400 and json.loads(body.read_text())['type'] == 'InvalidKeyException'
    # the inference key does not open the management API
    code, _, _ = curl('-o', os.devnull, *server.auth('inference'), f'{server.management}/models')
    assert code == 400


def test_curl_video_with_inference_key_gives_h264_mp4(server, video, tmp_path):
    out = tmp_path / 'tracked.mp4'
    code, content_type, _ = curl('-o', str(out), *server.auth('inference'), '-T', str(video),
                              f'{server.inference}/predictions/tiny_mot')
    assert code == 200, out.read_text(errors='replace')[:500]
    assert content_type == 'video/mp4'
    info = probe(out)
    assert (info['codec'], info['num_frames'], info['width'], info['height']) == ('h264', 8, 160, 120)
    assert float(info['fps']) == pytest.approx(12.5)


def test_options_as_headers(server, video, tmp_path):
    out = tmp_path / 'tracked.json'
    code, content_type, _ = curl('-o', str(out), *server.auth('inference'), '-H', 'output: json',
                              '-H', 'score_thr: 0', '-T', str(video),
                              f'{server.inference}/predictions/tiny_mot')
    assert code == 200 and content_type.startswith('application/json')
    result = json.loads(out.read_text())
    assert result['task'] == 'mot' and len(result['frames']) == 8


def test_management_metrics_and_healthcheck(server):
    code, _, listed = curl(*server.auth('management'), f'{server.management}/models')
    assert code == 200
    assert [m['modelName'] for m in json.loads(listed)['models']] == ['tiny_mot']
    code, _, metrics = curl(f'{server.metrics}/metrics')
    assert code == 200 and 'ts_' in metrics, metrics[:500]
    check = server.exec('mmtrack-serve-healthcheck')
    assert check.returncode == 0 and 'Healthy' in check.stdout, check.stdout + check.stderr


def test_token_authorization_can_be_switched_off(store, video, tmp_path):
    with running_container(store, env=['TS_DISABLE_TOKEN_AUTH=true']) as open_server:
        assert open_server.exec('test', '-e', 'key_file.json').returncode != 0
        out = tmp_path / 'tracked.mp4'
        code, content_type, _ = curl('-o', str(out), '-T', str(video),
                                  f'{open_server.inference}/predictions/tiny_mot')
        assert code == 200 and content_type == 'video/mp4'
        assert probe(out)['codec'] == 'h264'


def build(context, tag):
    """`ENGINE build -t TAG CONTEXT` from the repository root, nothing added."""
    return subprocess.run([ENGINE, 'build', '-t', tag, str(context)], cwd=REPO,
                          capture_output=True, text=True, timeout=1800)


def config(image):
    found = json.loads(engine('image', 'inspect', image).stdout)[0]
    return found['Config'], found.get('HealthCheck')


def contents(image):
    """What the image runs: the installed Python packages, this package's
    files, the entrypoint, health check and server config, with their sums."""
    script = ('cd /opt/venv/lib/python3.11/site-packages && '
              'find mmtrack_serve -name "*.py" | sort | xargs sha256sum && '
              'sha256sum /usr/local/bin/mmtrack-serve-entrypoint /usr/local/bin/mmtrack-serve-healthcheck '
              '/home/model-server/config.properties && /opt/venv/bin/python -m pip freeze --all')
    result = engine('run', '--rm', '--network', 'none', *no_healthcheck(), '--entrypoint', '/bin/bash',
                    image, '-c', script, timeout=300)
    return result.stdout


def test_readme_build_command_builds_the_image_make_docker_built():
    # the README's command with another tag, so that the tested image stays
    # the one `make docker` tagged
    tag = 'localhost/mmtrack-serve-readme-check:latest'
    result = build('docker/serve/', tag)
    try:
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        (built, built_check), (made, made_check) = config(tag), config(IMAGE)
        assert built == made
        if ENGINE != 'podman':
            # podman's default OCI format drops HEALTHCHECK; `make docker`
            # builds with --format docker, as docs/docker.md tells podman users
            assert built_check == made_check
        listed = contents(tag)
        assert 'mmtrack_serve/handlers/mmtrack_handler.py' in listed and '\nmmtrack-serve @ ' in listed
        assert listed == contents(IMAGE)
    finally:
        engine('rmi', tag, check=False)


def test_build_without_staged_source_fails_in_one_line(tmp_path):
    context = tmp_path / 'serve'
    shutil.copytree(REPO / 'docker' / 'serve', context,
                    ignore=shutil.ignore_patterns('mmtrack-serve-src.tar.gz'))
    result = build(context, 'localhost/mmtrack-serve-unstaged-check:latest')
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    said = [line for line in output.splitlines() if 'mmtrack-serve-src.tar.gz' in line]
    assert len(said) == 1 and '`make docker`' in said[0], output[-4000:]
