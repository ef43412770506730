import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmtrack_serve import cli
from mmtrack_serve.errors import InputError
from mmtrack_serve.training.mot_metrics import METRICS, evaluate_mot, evaluate_mot_dirs

from .shared_data import data_path

# /work/shared/data/README.md: motmetrics' own test_motchallenge_files.
REFERENCE = {
    'TUD-Campus': [0.557659, 0.729730, 0.451253, 0.582173, 0.941441,
                   8, 1, 6, 1, 13, 150, 7, 7, 0.526462, 0.277201],
    'TUD-Stadtmitte': [0.644619, 0.819760, 0.531142, 0.608997, 0.939920,
                       10, 5, 4, 1, 45, 452, 7, 6, 0.564014, 0.345904],
    'OVERALL': [0.624296, 0.799176, 0.512211, 0.602640, 0.940268,
                18, 6, 10, 2, 58, 602, 14, 13, 0.555116, 0.330177],
}


@pytest.fixture
def tud_res_dir(tmp_path):
    tud = data_path('TUD')
    for seq in ('TUD-Campus', 'TUD-Stadtmitte'):
        shutil.copy(tud / seq / 'test.txt', tmp_path / f'{seq}.txt')
    return tmp_path


def test_tud_reproduces_reference_table(tud_res_dir):
    metrics = evaluate_mot_dirs(data_path('TUD'), tud_res_dir)
    assert list(metrics) == list(REFERENCE)
    for seq, expected in REFERENCE.items():
        got = [metrics[seq][name] for name in METRICS]
        np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=seq)
    assert isinstance(metrics['OVERALL']['IDs'], int)


def test_cli_on_mmtracking_mot15_demo(tmp_path, capsys):
    train = data_path('mmtracking_tests', 'demo_MOT15_data', 'train')
    out = tmp_path / 'metrics.json'
    rc = cli.main(['eval-mot', '--gt-dir', str(train),
                   '--res-dir', str(train / 'results'), '--out', str(out)])
    assert rc == 0
    overall = json.loads(out.read_text())['OVERALL']
    # MMTracking's own MOT15 evaluation test asserts these.
    assert round(overall['IDF1'], 3) == 0.624
    assert round(overall['MOTA'], 3) == 0.555
    assert overall['IDs'] == 14
    assert 'OVERALL' in capsys.readouterr().out


def test_cli_missing_results_is_one_line_error(tmp_path, capsys):
    rc = cli.main(['eval-mot', '--gt-dir', str(data_path('TUD')), '--res-dir', str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1
    assert 'TUD-Campus.txt' in err and len(err.strip().splitlines()) == 1


def test_cli_missing_gt_dir(tmp_path, capsys):
    rc = cli.main(['eval-mot', '--gt-dir', str(tmp_path / 'nope'), '--res-dir', str(tmp_path)])
    assert rc == 1
    assert 'ground-truth folder not found' in capsys.readouterr().err


# The installed command, as a user runs it (beside this interpreter in .venv/bin).
MMTRACK_SERVE = Path(sys.executable).with_name('mmtrack-serve')


@pytest.mark.parametrize('broken, line, content', [
    ('res', 1, b'\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom\xa8\xff\x10\x00'),  # an mp4
    ('res', 3, b'1,1,10,20,30,40,1,-1,-1,-1\n\n1,2,abc,20,30,40,1,-1,-1,-1\n'),
    ('res', 2, b'1,1,10,20,30,40,1,-1,-1,-1\r\n1,2,10\r\n'),           # a short row
    ('gt', 2, b'1,1,10,20,30,40,1,1,1\n\xff\xfe1\x002\x00\n'),           # UTF-16 pasted in
])
def test_cli_bad_txt_file_is_one_line_naming_file_and_line(tmp_path, broken, line, content):
    good = b'1,1,10,20,30,40,1,1,1\n2,1,12,20,30,40,1,1,1\n'
    files = {'gt': tmp_path / 'gt' / 'SEQ' / 'gt' / 'gt.txt', 'res': tmp_path / 'res' / 'SEQ.txt'}
    for name, path in files.items():
        path.parent.mkdir(parents=True)
        path.write_bytes(content if name == broken else good)
    r = subprocess.run([str(MMTRACK_SERVE), 'eval-mot', '--gt-dir', str(tmp_path / 'gt'),
                        '--res-dir', str(tmp_path / 'res')], capture_output=True, text=True)
    assert r.returncode != 0
    assert 'Traceback' not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f'{files[broken]}, line {line}:' in lines[0], lines[0]
    assert 'OVERALL' not in r.stdout


def _track(track_id, frames, x0, dx=2.0, size=(40, 60), conf=1):
    return [[f, track_id, x0 + dx * f, 50, size[0], size[1], conf, 1, 1.0] for f in frames]


def test_in_memory_perfect_and_swapped_ids():
    gt = np.array(_track(1, range(1, 11), 10) + _track(2, range(1, 11), 200))
    perfect = evaluate_mot({'a': gt}, {'a': gt[:, :6]})
    assert perfect['a']['MOTA'] == 1.0 and perfect['a']['IDF1'] == 1.0

    swapped = gt.copy()
    swapped[(swapped[:, 0] > 5), 1] = 3 - swapped[(swapped[:, 0] > 5), 1]
    metrics = evaluate_mot({'a': gt}, {'a': swapped})
    assert metrics['a']['IDs'] == 2
    assert metrics['a']['IDF1'] == pytest.approx(0.5)


def test_arrays_and_files_mix(tud_res_dir):
    gt_file = data_path('TUD', 'TUD-Campus', 'gt.txt')
    res_rows = np.loadtxt(tud_res_dir / 'TUD-Campus.txt', delimiter=',')
    from_files = evaluate_mot({'s': gt_file}, {'s': tud_res_dir / 'TUD-Campus.txt'})
    mixed = evaluate_mot({'s': gt_file}, {'s': res_rows})
    assert mixed == from_files


def test_conf_zero_gt_is_an_ignore_region():
    counted = _track(1, range(1, 11), 10)
    ignored = _track(2, range(1, 11), 200, conf=0)
    gt = np.array(counted + ignored)
    # The tracker finds both objects: the ignored one is neither TP nor FP.
    both = evaluate_mot({'a': gt}, {'a': gt})['a']
    assert (both['FP'], both['FN'], both['GT'], both['MOTA']) == (0, 0, 1, 1.0)
    # Missing the ignored object costs nothing either.
    only_counted = evaluate_mot({'a': gt}, {'a': np.array(counted)})['a']
    assert (only_counted['FN'], only_counted['MOTA']) == (0, 1.0)


def test_iou_threshold_decides_matches():
    gt = np.array(_track(1, range(1, 6), 10, dx=0))
    shifted = gt.copy()
    shifted[:, 2] += 20  # 40-wide boxes moved by 20: IoU = 1/3
    assert evaluate_mot({'a': gt}, {'a': shifted}, iou_thr=0.5)['a']['Rcll'] == 0.0
    assert evaluate_mot({'a': gt}, {'a': shifted}, iou_thr=0.3)['a']['Rcll'] == 1.0


def test_empty_results_and_missing_sequence(tmp_path):
    gt = np.array(_track(1, range(1, 6), 10))
    (tmp_path / 'a.txt').write_text('')
    assert evaluate_mot({'a': gt}, {'a': tmp_path / 'a.txt'})['a']['FN'] == 5
    assert evaluate_mot({'a': gt}, {'a': []})['a']['Rcll'] == 0.0
    with pytest.raises(InputError, match='no results for sequence'):
        evaluate_mot({'a': gt}, {'b': gt})
