"""`make zoo` (scripts/model_zoo.py) on two real-size configs of the wheel: one
that goes all the way (load, 3 frames, checkpoint, mmtrack2torchserve, served
once on a real TorchServe) and QDTrack's base config, which has no test
pipeline and must come out as a one-line error, not a crash of the run."""
import re
import subprocess
import sys

import pytest

from conftest import REPO, SHARED_DATA

SCRIPT = REPO / 'scripts' / 'model_zoo.py'
# the cheapest configs that run: SiameseRPN++ sees a 255x255 crop, whatever the frame size
RUNS = 'siamese_rpn_r50_20e_otb100'
# a model but no data.test: MMTracking's base config for the QDTrack variants
FAILS = 'qdtrack_faster-rcnn_r50_fpn_4e_base'


def zoo(*args, timeout=600):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def table_rows(text):
    """{config: [cells]} of the table's rows (cells split on unescaped '|')."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r'\| `([^`]+)` \|', line)
        if match:
            cells = [c.strip() for c in re.split(r'(?<!\\)\|', line)[1:-1]]
            rows[match.group(1)] = cells
    return rows


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / 'MOT17-mini').is_dir(), reason='needs ../shared/data/MOT17-mini')
def test_zoo_rows(tmp_path):
    work, output = tmp_path / 'work', tmp_path / 'MODEL_ZOO.md'
    proc = zoo('--only', RUNS, '--only', FAILS, '--output', output, '--work-dir', work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    # a log line per config, with its outcome
    assert re.search(rf'\[\d/2\] {RUNS} \(\d+ s\): run [\d.]+ s/frame, converts yes, served yes', proc.stdout)
    assert re.search(rf'\[\d/2\] {FAILS} \(\d+ s\): load (error|bug)', proc.stdout)

    text = output.read_text()
    assert re.search(r'\*\*Partial run: 2 of \d+ configs\*\*', text)
    assert 'AMD' in text or 'cores' in text          # the machine it ran on
    rows = table_rows(text)
    assert set(rows) == {RUNS, FAILS}
    name, task, method, detections, spf, converts, served, notes = rows[RUNS]
    assert (task, detections, converts, served) == ('SOT', 'no', 'yes', 'yes')
    assert method.startswith('SiamRPN')
    assert float(spf) > 0
    assert re.search(r'served: worker ready in \d+ s, 3 frames in [\d.]+ s, objects: 1\b', notes)

    name, task, method, detections, spf, converts, served, notes = rows[FAILS]
    assert task == 'MOT' and method.startswith('QDTrack')
    assert spf in ('load error', 'load bug') and converts == served == 'skipped'
    assert notes.startswith('load: ') and '\n' not in notes and len(notes) < 300
    assert '1 with an error' in text and f'`{FAILS}`' in text.split('## Summary')[1]

    # checkpoints and archives go as soon as their config is done
    assert not list(work.rglob('*.pth')) and not list(work.rglob('*.mar'))


def test_zoo_no_match(tmp_path):
    proc = zoo('--only', 'no-such-config-*', '--output', tmp_path / 'z.md')
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith('zoo: error: no config matches no-such-config-*')
    assert 'Traceback' not in proc.stderr
    assert not (tmp_path / 'z.md').exists()


def test_zoo_resume_keeps_the_rows_it_has_and_reruns_bugs(tmp_path):
    """--resume: the rows of an earlier table are kept as they are, but one
    that ended in a raw Python error is run again; with nothing left to run,
    no server starts and the table is written at once."""
    sys.path.insert(0, str(SCRIPT.parent))
    import model_zoo
    root, configs = model_zoo.all_configs()
    earlier = tmp_path / 'MODEL_ZOO.md'
    ok_row = (f'| `{RUNS}` | SOT | SiamRPN (ResNet50) | no | 0.40 | yes | yes | '
              'served: worker ready in 9 s, 3 frames in 1.2 s, objects: 1 |')
    error_row = (f'| `{FAILS}` | MOT | QDTrack (FasterRCNN, ResNet50) | no | load error | skipped | '
                 'skipped | load: ConfigError: no test pipeline |')
    bug_row = ('| `bytetrack_yolox_x_crowdhuman_mot17-private` | MOT | ByteTrack (YOLOX, CSPDarknet) | '
               'no | 11.56 (1088x800) | yes | bug | served: **bug** ReadTimeout: timed out \\| again |')
    earlier.write_text('\n'.join(['# Model zoo', '', '| run | |', '|---|---|', '| date | 2026-01-02 |',
                                  '| commit | abc1234 |', '', ok_row, error_row, bug_row, '']))
    kept, made = model_zoo.read_table(earlier, configs)
    assert set(kept) == {RUNS, FAILS} and made == {'date': '2026-01-02', 'commit': 'abc1234'}
    assert kept[RUNS].seconds_per_frame == 0.40 and kept[FAILS].steps['load'] == 'error'

    proc = zoo('--resume', '--only', RUNS, '--only', FAILS, '--output', earlier)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'zoo: 0 of {len(configs)} configs' in proc.stdout and '(2 rows kept from' in proc.stdout
    text = earlier.read_text()
    assert ok_row in text and error_row in text and 'ReadTimeout' not in text
    assert '| rows kept | 2, from the run of 2026-01-02 at commit abc1234 (`--resume`) |' in text
    assert f'**Partial run: 2 of {len(configs)} configs**' in text
