"""The benchmarks' baseline: a TorchServe handler that works the way
MMTracking's own ``tools/torchserve/mmtrack_handler.py`` does. For comparison
only; mmtrack-serve never serves it.

What it keeps from that handler: the upload written to a temp file in the
working directory, OpenCV decoding, ``mmtrack.apis.inference_*`` per frame
(which rebuilds the test pipeline every frame), ``model.show_result`` drawing,
an ``mp4v`` file written by OpenCV beside it and read back. Two bugs of the
original are fixed so that it returns a playable file and the comparison is
fair: its paths lack a separator (``os.getcwd() + 'src0.mp4'`` lands in the
parent folder), and it never releases the VideoWriter (the mp4 has no index).
A third fix is for Python 3.11: ``show_result`` seeds ``random`` with a numpy
track id, which 3.11 refuses (TypeError), so the id is made an int first.
"""
import os

import cv2
import torch
from ts.torch_handler.base_handler import BaseHandler

SCORE_THR = 0.5


def _int_seeded_track_colours():
    from mmtrack.core.utils import visualization
    random_color = visualization.random_color
    if getattr(random_color, 'int_seeded', False):
        return
    def int_seeded(seed):
        return random_color(int(seed))
    int_seeded.int_seeded = True
    visualization.random_color = int_seeded


def track_like_mmtracking(model, src_file, res_file, score_thr=SCORE_THR):
    """Tracks ``src_file`` frame by frame into an mp4v ``res_file``; returns the frame count."""
    from mmtrack.apis import inference_mot, inference_vid
    _int_seeded_track_colours()
    infer = inference_mot if hasattr(model, 'tracker') else inference_vid
    cap = cv2.VideoCapture(src_file)
    fps = cap.get(cv2.CAP_PROP_FPS)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(res_file, cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
    frame_id = 0
    try:
        while cap.isOpened():
            ok, frame = cap.read()
            if not ok:
                break
            result = infer(model, frame, frame_id)
            writer.write(model.show_result(frame, result, score_thr=score_thr, show=False))
            frame_id += 1
    finally:
        cap.release()
        writer.release()
    return frame_id


class BaselineHandler(BaseHandler):

    def initialize(self, context):
        from mmtrack.apis import init_model
        properties = context.system_properties
        device = f'cuda:{properties.get("gpu_id")}' if torch.cuda.is_available() else 'cpu'
        model_dir = properties['model_dir']
        checkpoint = os.path.join(model_dir, context.manifest['model']['serializedFile'])
        self.model = init_model(os.path.join(model_dir, 'config.py'), checkpoint, device)
        self.initialized = True

    def handle(self, data, context):
        outputs = []
        for i, row in enumerate(data):
            content = row.get('data') or row.get('body')
            src_file = os.path.join(os.getcwd(), f'src{i}.mp4')
            res_file = os.path.join(os.getcwd(), f'res{i}.mp4')
            with open(src_file, 'wb') as f:
                f.write(content)
            try:
                track_like_mmtracking(self.model, src_file, res_file)
                with open(res_file, 'rb') as f:
                    outputs.append(f.read())
            finally:
                for path in (src_file, res_file):
                    if os.path.exists(path):
                        os.remove(path)
        return outputs
