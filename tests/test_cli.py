"""The command lines as a user runs them: real files in, one-line errors out."""
import json
import subprocess
import sys

import pytest

from conftest import SHARED_DATA
from mmtrack_serve.video import probe

DEMO = SHARED_DATA / 'videos' / 'demo.mp4'
BAG = SHARED_DATA / 'videos' / 'bag.avi'
needs_shared = pytest.mark.skipif(not DEMO.is_file(), reason='../shared/data absent')


def cli(*args, tool='mmtrack_serve.cli'):
    return subprocess.run([sys.executable, '-m', tool, *map(str, args)], capture_output=True, text=True)


def assert_one_line_error(result, *words):
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if 'error:' in line]
    assert len(errors) == 1, result.stderr
    assert 'Traceback' not in result.stderr, result.stderr
    for word in words:
        assert word in errors[0], errors[0]


@needs_shared
def test_run_mot_on_the_demo_clip(tiny_files, tmp_path):
    config, _ = tiny_files['mot']
    out, js, mot = tmp_path / 'o.mp4', tmp_path / 'o.json', tmp_path / 'o.txt'
    r = cli('run', config, '--input', DEMO, '--output', out, '--json', js, '--mot', mot,
            '--score-thr', '0', '--quiet')
    assert r.returncode == 0, r.stderr
    assert 'random weights' in r.stderr
    assert str(out.resolve()) in r.stdout and 'tracked 8 frames' in r.stdout
    info = probe(out)
    assert (info['codec'], info['num_frames'], info['width'], info['height']) == ('h264', 8, 1920, 1080)
    results = json.loads(js.read_text())
    assert results['task'] == 'mot' and len(results['frames']) == 8
    assert len(mot.read_text().splitlines()) == sum(len(f['objects']) for f in results['frames'])


@needs_shared
def test_run_sot_on_the_bag_clip(tiny_files, tmp_path):
    config, ckpt = tiny_files['sot']
    js = tmp_path / 'bag.json'
    r = cli('run', config, '--checkpoint', ckpt, '--input', BAG, '--json', js,
            '--init-bbox', '200,100,280,200', '--quiet')
    assert r.returncode == 0, r.stderr
    frames = json.loads(js.read_text())['frames']
    assert len(frames) == 196
    assert frames[0]['objects'][0]['bbox'] == [200.0, 100.0, 280.0, 200.0]


def test_run_cfg_options_reach_the_model(tiny_files, tmp_path, video):
    config, ckpt = tiny_files['mot']
    outs = []
    for thr in ('0.5', '0.99'):
        js = tmp_path / f'{thr}.json'
        r = cli('run', config, '--checkpoint', ckpt, '--input', video, '--json', js, '--score-thr', '0',
                '--quiet', '--cfg-options', f'model.tracker.init_track_thr={thr}')
        assert r.returncode == 0, r.stderr
        outs.append(sum(len(f['objects']) for f in json.loads(js.read_text())['frames']))
    assert outs[0] > outs[1]


@pytest.mark.parametrize('case, words', [
    ('not_video', ['not a readable video']),
    ('empty', ['empty']),
    ('missing', ['no such file']),
    ('sot_no_bbox', ['init_bbox']),
    ('not_tracking', ['not an MMTracking video model']),
    ('no_output', ['nothing to write']),
])
def test_run_errors_are_one_line(case, words, tiny_files, tmp_path, video):
    mot_config, _ = tiny_files['mot']
    sot_config, sot_ckpt = tiny_files['sot']
    bad = tmp_path / 'bad.mp4'
    args = {
        'not_video': lambda: bad.write_text('hello' * 100) and (mot_config, bad),
        'empty': lambda: bad.write_bytes(b'') is not None and (mot_config, bad),
        'missing': lambda: (mot_config, tmp_path / 'missing.mp4'),
        'sot_no_bbox': lambda: (sot_config, video),
        'not_tracking': lambda: ('faster-rcnn_r50_fpn_4e_mot17-half', video),
        'no_output': lambda: (mot_config, video),
    }[case]()
    extra = [] if case == 'no_output' else ['--json', tmp_path / 'o.json']
    r = cli('run', args[0], '--input', args[1], *extra)
    assert_one_line_error(r, *words)


def test_outputs_into_missing_folders_create_them(tiny_files, tmp_path, video):
    config, ckpt = tiny_files['mot']
    new = tmp_path / 'new' / 'deeper'
    out, js, mot = new / 'o.mp4', new / 'json' / 'o.json', new / 'mot' / 'o.txt'
    r = cli('run', config, '--checkpoint', ckpt, '--input', video, '--output', out, '--json', js,
            '--mot', mot, '--quiet')
    assert r.returncode == 0, r.stderr
    assert probe(out)['num_frames'] == 8
    assert len(json.loads(js.read_text())['frames']) == 8 and mot.is_file()
    # stream makes its folders before the first chunk goes out (here to no server at all)
    folders = [tmp_path / 'stream' / name for name in ('video', 'json', 'mot')]
    s = cli('stream', video, '--url', '127.0.0.1:9', '--model', 'tiny_mot', '--quiet',
            '--output', folders[0] / 'o.mp4', '--json', folders[1] / 'o.json', '--mot', folders[2] / 'o.txt')
    assert_one_line_error(s, 'cannot reach')
    assert all(folder.is_dir() for folder in folders)
    # a folder that cannot be made is a one-line error before the model loads
    (tmp_path / 'a_file').write_text('')
    bad = cli('run', config, '--input', video, '--json', tmp_path / 'a_file' / 'o.json')
    assert_one_line_error(bad, 'cannot create output folder', 'a_file')
    assert 'loaded' not in bad.stdout


def test_converter_refuses_unsafe_names_and_overwrites(tiny_files, tmp_path):
    config, ckpt = tiny_files['mot']
    tool = 'mmtrack_serve.converters.mmtrack2torchserve'
    r = cli(config, ckpt, '--output-folder', tmp_path, '--model-name', '../evil', tool=tool)
    assert_one_line_error(r, 'not allowed')
    assert not list(tmp_path.parent.glob('evil*'))
    ok = cli(config, ckpt, '--output-folder', tmp_path, '--model-name', 'm', tool=tool)
    assert ok.returncode == 0, ok.stderr
    assert 'm.mar' in ok.stdout and 'MiB' in ok.stdout and 'mmtrack-serve serve' in ok.stdout
    again = cli(config, ckpt, '--output-folder', tmp_path, '--model-name', 'm', tool=tool)
    assert_one_line_error(again, 'exists', '--force')
    forced = cli(config, ckpt, '--output-folder', tmp_path, '--model-name', 'm', '-f', tool=tool)
    assert forced.returncode == 0


def test_serve_with_a_run_dir_too_long_for_worker_sockets_is_one_line(tmp_path):
    """TorchServe's workers listen on sockets in the run dir; past Linux's 107
    bytes they die at start with 'AF_UNIX path too long'."""
    store = tmp_path / 'store'
    store.mkdir()
    (store / 'm.mar').write_bytes(b'')
    run_dir = tmp_path / ('r' * 100)
    r = cli('serve', '--model-store', store, '--run-dir', run_dir, '--port-base', '39990')
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert 'too long a path' in lines[0] and 'shorter --run-dir' in lines[0]


def test_serve_with_a_bad_state_store_is_one_line(tmp_path):
    store = tmp_path / 'store'
    store.mkdir()
    (store / 'm.mar').write_bytes(b'')
    base = ('serve', '--model-store', store, '--run-dir', tmp_path / 'run', '--port-base', '39980')
    bad = cli(*base, '--state-store', 'http://x')
    assert_one_line_error(bad, '--state-store http://x', 'expected dir:PATH, redis://HOST:PORT/DB or none')
    # port 9 (discard) on loopback: nothing listens
    down = cli(*base, '--state-store', 'redis://127.0.0.1:9/0')
    assert_one_line_error(down, '--state-store redis://127.0.0.1:9/0: cannot reach it')
    negative = cli(*base, '--max-state-mb', '-1')
    assert_one_line_error(negative, '--max-state-mb must be 0')
