"""An RTSP server for tests/test_live.py: gst-rtsp-server (Debian's
gir1.2-gst-rtsp-server-1.0, through python3-gi, so run by the system python,
not the venv's) serving one H.264 mp4 at rtsp://127.0.0.1:PORT/clip, its
packets as they are (no re-encoding), at real time.

    /usr/bin/python3 tests/rtsp_server.py CLIP.mp4 PORT   prints the URL, serves until killed
    /usr/bin/python3 tests/rtsp_server.py --check         exits 0 when it can run here
"""
import signal
import sys

import gi

gi.require_version('Gst', '1.0')
gi.require_version('GstRtspServer', '1.0')
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ELEMENTS = ('filesrc', 'qtdemux', 'rtph264pay')


def main(argv):
    Gst.init(None)
    missing = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
    if missing:
        sys.exit(f'GStreamer elements missing: {", ".join(missing)} (gstreamer1.0-plugins-good)')
    if argv[:1] == ['--check']:
        return
    clip, port = argv
    server = GstRtspServer.RTSPServer()
    server.set_address('127.0.0.1')
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # qtdemux gives H.264 in avc form, which rtph264pay takes as is. SPS/PPS
    # go in the SDP only: repeated in-band (config-interval) they come before
    # each slice of a keyframe, and FFmpeg then splits the frame in two.
    factory.set_launch(f'( filesrc location="{clip}" ! qtdemux ! rtph264pay name=pay0 pt=96 )')
    # shared: a client that reconnects joins the one running media, as with a camera
    factory.set_shared(True)
    server.get_mount_points().add_factory('/clip', factory)
    if server.attach(None) == 0:
        sys.exit(f'cannot listen on 127.0.0.1:{port}')
    print(f'rtsp://127.0.0.1:{port}/clip', flush=True)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    loop.run()


if __name__ == '__main__':
    main(sys.argv[1:])
