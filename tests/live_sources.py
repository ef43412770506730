"""Real live sources on 127.0.0.1 for tests/test_live.py, fed from a real clip
at real-time pace: UDP MPEG-TS written by PyAV, an HLS live playlist (PyAV's
hls muxer) served by a local http.server, and an RTSP server (gst-rtsp-server
through Debian's python3-gi; tests/rtsp_server.py).

Every source sends the clip's H.264 packets as they are (remuxed, never
re-encoded), so the client decodes exactly the frames a whole-video upload of
the clip decodes: their results can be compared for equality.
"""
import functools
import http.server
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av

from conftest import TESTS

RTSP_HELPER = TESTS / 'rtsp_server.py'
SYSTEM_PYTHON = '/usr/bin/python3'


def h264_clip(path, frames, fps, keyint=5):
    """``frames`` (BGR) as H.264 mp4 without B-frames (nothing held back by
    the decoder) and a keyframe every ``keyint`` frames (short HLS segments,
    quick resync after a reconnect)."""
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), 'w', format='mp4') as out:
        stream = out.add_stream('libx264', rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = 'yuv420p'
        time_base = stream.time_base = 1 / rate
        stream.options = {'crf': '20', 'preset': 'veryfast', 'bf': '0',
                          'x264-params': f'keyint={keyint}:min-keyint={keyint}:scenecut=0'}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format='bgr24')
            frame.pts, frame.time_base = i, time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return Path(path)


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def remux_live(clip, target, fmt, options=None, stop=None, first=0, count=None, on_packet=None):
    """Sends ``clip``'s packets ``first`` .. ``first + count - 1`` to ``target``
    (a URL or path) in ``fmt``, each at its time: real-time pace."""
    with av.open(str(clip)) as src:
        source = src.streams.video[0]
        packets = [p for p in src.demux(source) if p.dts is not None]
        packets = packets[first:None if count is None else first + count]
        with av.open(str(target), 'w', format=fmt, options=options or {}) as out:
            stream = out.add_stream_from_template(source)
            start = time.monotonic()
            t0 = packets[0].pts * source.time_base if packets else 0
            for packet in packets:
                if stop is not None and stop.is_set():
                    return
                due = start + float(packet.pts * source.time_base - t0)
                time.sleep(max(0.0, due - time.monotonic()))
                packet.stream = stream
                out.mux(packet)
                if on_packet is not None:
                    on_packet()


# mpegts: each video PES says its length (the demuxer hands a frame over at
# once, not when the next one starts), each packet goes out at once, and
# timestamps start at the clip's (0), so a frame's source_time is its index/fps.
MPEGTS_OPTIONS = {'omit_video_pes_length': '0', 'flush_packets': '1', 'max_delay': '0',
                  'mpegts_copyts': '1'}


def udp_url(port):
    return f'udp://127.0.0.1:{port}'


class Sender:
    """``remux_live`` in a thread; ``stop()`` ends it as a killed camera would."""

    def __init__(self, *args, **kwargs):
        self._stop = threading.Event()
        self.error = self.finished_at = None
        self.sent = 0
        kwargs.update(stop=self._stop, on_packet=self._count)
        self._thread = threading.Thread(target=self._run, args=args, kwargs=kwargs, daemon=True)
        self._thread.start()

    def _count(self):
        self.sent += 1

    def _run(self, *args, **kwargs):
        try:
            remux_live(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - the test asserts on it
            self.error = e
        finally:
            self.finished_at = time.time()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)

    def join(self, timeout=None):
        self._thread.join(timeout)
        return not self._thread.is_alive()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def http_folder(folder):
    """Serves ``folder`` on 127.0.0.1; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()


# hls: half-second segments (a keyframe every 5 frames at 12.5 fps: 0.4 s),
# every segment kept in the playlist so a late reader can start at the first.
HLS_OPTIONS = {'hls_time': '0.4', 'hls_list_size': '0', 'hls_flags': 'independent_segments'}


def rtsp_available():
    """None when the RTSP helper can run here, else why not."""
    if not Path(SYSTEM_PYTHON).is_file():
        return f'no {SYSTEM_PYTHON} for the gst-rtsp-server helper'
    r = subprocess.run([SYSTEM_PYTHON, str(RTSP_HELPER), '--check'], capture_output=True, text=True)
    if r.returncode != 0:
        return ('no RTSP server: tests/rtsp_server.py needs python3-gi, gir1.2-gst-rtsp-server-1.0 '
                'and gstreamer1.0-plugins-good (`make setup` installs them as root): '
                + (r.stderr.strip().splitlines() or ['?'])[-1])
    return None


@contextmanager
def rtsp_server(clip):
    """gst-rtsp-server playing ``clip`` (remuxed, real time) at a URL it yields."""
    port = free_port()
    proc = subprocess.Popen([SYSTEM_PYTHON, str(RTSP_HELPER), str(clip), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith('rtsp://'), (line, proc.stderr.read() if proc.poll() is not None else '')
        yield line.strip()
    finally:
        stop_process(proc)


def stop_process(proc, timeout=10):
    """Terminates ``proc``, killing it if it has not ended within ``timeout`` s."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def have_ffmpeg():
    return shutil.which('ffmpeg') is not None
