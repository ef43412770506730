"""The served mp4 plays in a real browser: headless Chromium (Debian's
`chromium`, installed by `make setup` as root) loads it over HTTP in a
<video> element, and the page writes what the element reports into the DOM.

`--dump-dom` with `--virtual-time-budget` is deterministic here: Blink pauses
virtual time while a media element loads, so the budget runs out only after
the video has played or failed, however slow the machine. The second test
proves the check can fail: OpenCV's mp4v file (what MMTracking's own
prototype returns) gives a media error in the same harness.
"""
import functools
import html
import json
import os
import re
import shutil
import signal
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from serving import DEAD_PROXY, put, running_server

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason='chromium is not installed: `make setup` as root on Debian installs it '
                             '(apt-get install chromium)')

# What a browser needs for unattended playback, and nothing that reaches out:
# no background fetches, updates or sync, and a dead proxy for anything that
# is not loopback (Chromium never proxies 127.0.0.1), as for the workers.
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--autoplay-policy=no-user-gesture-required', f'--proxy-server={DEAD_PROXY}',
                  '--virtual-time-budget=10000', '--dump-dom']

# Records the element's events and state in <pre id="state"> as JSON.
PAGE = """<!doctype html>
<html><body>
<video id="video" muted autoplay playsinline></video>
<pre id="state">{}</pre>
<script>
const video = document.getElementById('video');
const state = {events: [], error: null};
function record(event) {
  if (event && !state.events.includes(event.type)) state.events.push(event.type);
  if (video.error) state.error = {code: video.error.code, message: video.error.message};
  for (const key of ['videoWidth', 'videoHeight', 'duration', 'currentTime', 'readyState'])
    state[key] = video[key];
  document.getElementById('state').textContent = JSON.stringify(state);
}
for (const type of ['loadedmetadata', 'canplay', 'playing', 'timeupdate', 'ended', 'error'])
  video.addEventListener(type, record);
video.src = new URLSearchParams(location.search).get('src');
record(null);
</script>
</body></html>
"""
STATE = re.compile(r'<pre id="state">(.*?)</pre>', re.S)


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def web(tmp_path_factory):
    """A plain static HTTP server on 127.0.0.1 serving a folder (and the page).

    No range support: Chromium reads a small mp4 from one 200 response (checked:
    faststart or not, it plays), so this is the least a web server offers.
    """
    root = tmp_path_factory.mktemp('www')
    (root / 'page.html').write_text(PAGE)
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_QuietFiles, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f'http://127.0.0.1:{httpd.server_address[1]}'
    finally:
        httpd.shutdown()
        httpd.server_close()


def play(web, video, tmp_path):
    """Loads ``video`` in Chromium's <video>; returns the element's recorded state."""
    root, url = web
    name = f'{len(list(root.iterdir()))}-{Path(video).name}'
    shutil.copy(video, root / name)
    profile = tmp_path / f'chromium-profile-{name}'
    profile.mkdir()
    cmd = [CHROMIUM, *CHROMIUM_FLAGS, f'--user-data-dir={profile}', f'{url}/page.html?src={name}']
    # A session of its own, so a hung browser goes with all its child processes.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    match = STATE.search(out)
    assert proc.returncode == 0 and match, f'chromium failed (rc {proc.returncode}): {err[-2000:]}'
    return json.loads(html.unescape(match.group(1)))


def assert_plays(state, width, height, num_frames, fps):
    assert state['error'] is None, state
    assert 'playing' in state['events'] and state['currentTime'] > 0, state
    assert (state['videoWidth'], state['videoHeight']) == (width, height), state
    assert state['duration'] == pytest.approx(num_frames / fps, abs=0.5 / fps), state


@pytest.fixture
def odd_video(tmp_path, video):
    """The clip cropped to 159x119 (PNG in MOV: OpenCV's writers round sizes to even)."""
    capture, frames = cv2.VideoCapture(str(video)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(np.ascontiguousarray(frame[:119, :159]))
    capture.release()
    path = tmp_path / 'odd.mov'
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('png', rate=25)
        stream.width, stream.height, stream.pix_fmt = 159, 119, 'rgb24'
        for i, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format='bgr24')
            picture.pts = i
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path, len(frames)


@needs_chromium
@pytest.mark.server
def test_served_mp4_plays_in_chromium(tiny_files, video, odd_video, tmp_path, web):
    from mmtrack_serve.converters.mmtrack2torchserve import convert

    config, ckpt = tiny_files['mot']
    store = tmp_path / 'store'
    convert(str(config), str(ckpt), output_folder=store, model_name='tiny_mot')
    odd, odd_frames = odd_video
    # (source, browser's size: an odd side is padded by one pixel, frames, fps)
    cases = [(video, 160, 120, 8, 12.5), (odd, 160, 120, odd_frames, 25.0)]
    with running_server(store, tmp_path / 'run', models=['tiny_mot=tiny_mot.mar']) as server:
        for source, width, height, num_frames, fps in cases:
            r = put(server, 'tiny_mot', source)
            assert r.status_code == 200, r.text[:300]
            assert r.headers['Content-Type'].startswith('video/mp4')
            served = tmp_path / f'served-{source.stem}.mp4'
            served.write_bytes(r.content)
            state = play(web, served, tmp_path)
            assert_plays(state, width, height, num_frames, fps)


@needs_chromium
def test_opencv_mp4v_does_not_play_in_chromium(video, tmp_path, web):
    state = play(web, video, tmp_path)
    assert 'playing' not in state['events'], state
    assert state['error'] and state['error']['code'] == 4, state   # MEDIA_ERR_SRC_NOT_SUPPORTED
    with pytest.raises(AssertionError):
        assert_plays(state, 160, 120, 8, 12.5)
