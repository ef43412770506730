"""Test material on REAL weights: the shared YOLOX-nano ByteTrack
(../shared/data/weights), the MOT17-mini frame folders made into mp4, the
1080p demo clip as a frame folder, MMTracking's own ``inference_mot`` run on
those frames, and a comparison that lets track ids differ in value but not in
how they link objects across frames."""
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from conftest import SHARED_DATA

WEIGHTS = SHARED_DATA / 'weights'
CONFIG = WEIGHTS / 'bytetrack_yolox_nano_person.py'
CHECKPOINT = WEIGHTS / 'bytetrack_yolox_nano_person.pth'
MOT17 = SHARED_DATA / 'MOT17-mini' / 'train'
DEMO_MP4 = SHARED_DATA / 'videos' / 'demo.mp4'
MISSING = [str(p) for p in (CONFIG, CHECKPOINT, MOT17, DEMO_MP4) if not p.exists()]
SKIP_REASON = f'the shared real-weights material is absent: {", ".join(MISSING)}'

# parity.compare's tolerances: float rounding (detector batching, thread
# counts) moves boxes by < 1e-4 px; anything beyond is a real difference.
BOX_TOL_PX = 1e-3
SCORE_TOL = 1e-4


# A machine busy with other work (the suite on 2 cores, a training run) stalls
# torch's OpenMP threads, which spin-wait for each other: measured on this
# real model with the cores loaded, 7-10 s a frame with 2 threads, 0.23 s with
# 1 thread, 0.34 s with 2 passive threads. Results do not depend on it (float
# rounding at most, within the tolerances below).
QUIET_OMP = {'OMP_WAIT_POLICY': 'PASSIVE'}


@contextmanager
def one_torch_thread():
    """In this process (where OpenMP is already started): one torch thread."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def sequence_names():
    """The MOT17-mini sequences (their frames on disk, not seqinfo.ini's length)."""
    return sorted(p.parent.name for p in MOT17.glob('*/img1')) if MOT17.is_dir() else []


def sequence_fps(name):
    for line in (MOT17 / name / 'seqinfo.ini').read_text().splitlines():
        if line.startswith('frameRate='):
            return int(line.split('=')[1])
    return 30


def image_paths(folder):
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in ('.jpg', '.png'))


def write_lossless_mp4(frames, path, fps):
    """BGR frames as lossless H.264 RGB (libx264rgb, qp 0) in mp4, written with
    PyAV directly (not the code under test): decoded, it gives back exactly
    these frames, so results on the mp4 and on the frame folder must agree."""
    with av.open(str(path), 'w', format='mp4') as container:
        stream = container.add_stream('libx264rgb', rate=Fraction(fps))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = 'bgr24'
        stream.options = {'qp': '0', 'preset': 'ultrafast'}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format='bgr24')):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def decode(video):
    """Every frame of a video as BGR arrays, with PyAV."""
    with av.open(str(video)) as container:
        return [f.to_ndarray(format='bgr24') for f in container.decode(container.streams.video[0])]


def build_material(root):
    """{name: (frame folder, mp4)}: each MOT17-mini sequence (its img1 folder,
    and an mp4 made from it here), and 'demo' (demo.mp4 as is, and a folder of
    its decoded frames as PNG). The mp4 of each decodes to the folder's frames."""
    root = Path(root)
    material = {}
    for name in sequence_names():
        folder = MOT17 / name / 'img1'
        frames = [cv2.imread(str(p)) for p in image_paths(folder)]
        material[name] = (folder, write_lossless_mp4(frames, root / f'{name}.mp4', sequence_fps(name)))
    demo_frames = root / 'demo_frames'
    demo_frames.mkdir()
    for i, frame in enumerate(decode(DEMO_MP4)):
        assert cv2.imwrite(str(demo_frames / f'{i + 1:06d}.png'), frame)
    material['demo'] = (demo_frames, DEMO_MP4)
    return material


def mmtrack_model():
    """The real model as MMTracking's own ``init_model`` builds it."""
    from mmtrack.apis import init_model
    return init_model(str(CONFIG), str(CHECKPOINT), device='cpu')


def inference_mot_results(model, folder):
    """MMTracking's own run: ``inference_mot`` on each image path of ``folder``
    (mmtrack's own loading; it resets the tracker at frame 0), as our JSON
    schema's frames. No score threshold: every object the tracker reports."""
    from mmtrack.apis import inference_mot
    from mmtrack.core import results2outs
    frames = []
    for frame_id, path in enumerate(image_paths(folder)):
        outs = results2outs(bbox_results=inference_mot(model, str(path), frame_id)['track_bboxes'])
        frames.append({'frame_id': frame_id, 'objects': [
            {'track_id': int(i), 'label': int(label), 'bbox': [float(v) for v in box[:4]],
             'score': float(box[4])}
            for i, label, box in zip(outs['ids'], outs['labels'], outs['bboxes'])]})
    return frames


def match_tracks(ours, theirs):
    """Asserts that two runs' frames hold the same objects: per frame the same
    count, each of ours paired with one of theirs (boxes within BOX_TOL_PX,
    same score within SCORE_TOL, same label), and track ids related one to one
    across all frames. Returns {our id: their id}."""
    assert len(ours) == len(theirs), f'{len(ours)} frames vs {len(theirs)}'
    ours_to_theirs, theirs_to_ours = {}, {}
    for mine, other in zip(ours, theirs):
        frame_id = other['frame_id']
        assert mine['frame_id'] == frame_id
        a, b = mine['objects'], other['objects']
        assert len(a) == len(b), f'frame {frame_id}: {len(a)} objects vs {len(b)}'
        free = list(range(len(b)))
        for obj in a:
            diffs = [max(abs(x - y) for x, y in zip(obj['bbox'], b[j]['bbox'])) for j in free]
            assert diffs, f'frame {frame_id}: nothing left to pair with {obj}'
            j = free.pop(int(np.argmin(diffs)))
            match = b[j]
            assert min(diffs) <= BOX_TOL_PX, \
                f'frame {frame_id}: box {obj["bbox"]} vs nearest {match["bbox"]} ({min(diffs):.2e} px)'
            assert abs(obj['score'] - match['score']) <= SCORE_TOL, \
                f'frame {frame_id}: score {obj["score"]} vs {match["score"]}'
            assert obj['label'] == match['label']
            mine_id, their_id = obj['track_id'], match['track_id']
            assert ours_to_theirs.setdefault(mine_id, their_id) == their_id, \
                f'frame {frame_id}: our track {mine_id} is theirs {their_id}, was {ours_to_theirs[mine_id]}'
            assert theirs_to_ours.setdefault(their_id, mine_id) == mine_id, \
                f'frame {frame_id}: their track {their_id} is our {mine_id}, was {theirs_to_ours[their_id]}'
    return ours_to_theirs


def mot_rows(frames):
    """Our JSON frames as MOTChallenge rows (frame 1-based, id, x, y, w, h, score)."""
    return [(f['frame_id'] + 1, o['track_id'], o['bbox'][0], o['bbox'][1],
             o['bbox'][2] - o['bbox'][0], o['bbox'][3] - o['bbox'][1], o['score'])
            for f in frames for o in f['objects']]


def parse_mot_txt(text):
    rows = []
    for line in text.splitlines():
        if line.strip():
            values = line.split(',')
            assert len(values) == 10 and values[7:] == ['-1', '-1', '-1'], line
            rows.append((int(values[0]), int(values[1]), *(float(v) for v in values[2:7])))
    return rows


def assert_mot_equal(text, frames):
    """A served MOT txt holds the rows of ``frames``, in order (3 decimals for
    pixels and 6 for scores in the file, hence the rounding allowance)."""
    got, expected = parse_mot_txt(text), mot_rows(frames)
    assert len(got) == len(expected), f'{len(got)} MOT rows vs {len(expected)}'
    for g, e in zip(got, expected):
        assert g[:2] == e[:2], f'{g} vs {e}'
        assert max(abs(x - y) for x, y in zip(g[2:6], e[2:6])) <= BOX_TOL_PX + 5e-4, f'{g} vs {e}'
        assert abs(g[6] - e[6]) <= SCORE_TOL, f'{g} vs {e}'
