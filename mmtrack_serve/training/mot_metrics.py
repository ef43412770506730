"""MOTChallenge CLEAR-MOT and identity metrics with motmetrics.

Follows motmetrics' own MOTChallenge evaluation (``test_motchallenge_files``):
``mm.io.loadtxt(fmt='mot15-2D')``, per-frame IoU matching with
``compare_to_groundtruth(gt, res, 'iou', distth=1 - iou_thr)``, and
``compute_many(metrics=motchallenge_metrics, generate_overall=True)``.
MOTP is motmetrics' value: the mean matched distance, i.e. ``1 - IoU``.

One addition, a no-op for MOT15-style ground truth: rows whose confidence is 0
(MOT16+ and the synthetic world's "ignore" flag) are ignore regions, as in the
MOT devkit. A result box the per-frame assignment pairs with one is dropped
(neither TP nor FP), and the ignored rows are never counted as misses.
"""
import math
import re
from pathlib import Path

import motmetrics as mm
import numpy as np
import pandas as pd

from ..errors import InputError

METRICS = ['IDF1', 'IDP', 'IDR', 'Rcll', 'Prcn', 'GT', 'MT', 'PT', 'ML',
           'FP', 'FN', 'IDs', 'FM', 'MOTA', 'MOTP']
RATIO_METRICS = {'IDF1', 'IDP', 'IDR', 'Rcll', 'Prcn', 'MOTA'}

_COLUMNS = ['X', 'Y', 'Width', 'Height', 'Confidence', 'ClassId', 'Visibility']
_BOX = ['X', 'Y', 'Width', 'Height']
# How motmetrics' MOTChallenge reader splits a line (``sep``, with
# ``skipinitialspace``), and how many columns it reads: frame, id and the box
# are needed, conf, class, visibility and one unused column may follow.
_FIELD_SEPARATOR = re.compile(r'\s*,\s*|\s+')
_MIN_FIELDS, _MAX_FIELDS = 6, 10


def evaluate_mot(gt_by_seq, res_by_seq, iou_thr=0.5):
    """Per-sequence and overall MOTChallenge metrics.

    Args:
        gt_by_seq (Mapping[str, object]): ground truth per sequence name.
        res_by_seq (Mapping[str, object]): tracker results per sequence name;
            every ground-truth sequence needs one (extra ones are ignored).
            Each value is one of:

            - a path (str or Path) to a MOTChallenge txt file
              (``frame,id,x,y,w,h,conf,...``, comma or space separated);
            - a numpy array (or nested list) of shape (N, 6..10) with the
              same columns: ``frame, id, x, y, w, h[, conf, class,
              visibility, unused]``; frames
              and ids are integers, frames as numbered in the txt files
              (1-based by convention, only consistency matters), missing
              ``conf`` means 1;
            - a DataFrame as returned by ``mm.io.loadtxt``.

            A ground-truth row with ``conf == 0`` is an ignore region.
        iou_thr (float): minimum IoU for a result box to match a gt box.

    Returns:
        dict: ``{seq: {metric: value}}`` for each ground-truth sequence in
        sorted order, then ``'OVERALL'``; metrics are ``METRICS``; counts are
        ints, the rest floats (rates in [0, 1], MOTA at most 1 and possibly
        negative, MOTP as 1 - IoU).
    """
    if not gt_by_seq:
        raise InputError('no ground-truth sequences to evaluate')
    names = sorted(gt_by_seq)
    missing = [name for name in names if name not in res_by_seq]
    if missing:
        raise InputError(f'no results for sequence(s): {", ".join(missing)}')

    max_distance = 1.0 - iou_thr
    accumulators = []
    for name in names:
        gt = as_mot_frame(gt_by_seq[name])
        res = as_mot_frame(res_by_seq[name])
        gt, res = _apply_ignore_regions(gt, res, max_distance)
        accumulators.append(mm.utils.compare_to_groundtruth(
            gt, res, 'iou', distth=max_distance))

    mh = mm.metrics.create()
    summary = mh.compute_many(
        accumulators, metrics=mm.metrics.motchallenge_metrics, names=names,
        generate_overall=True)
    summary = summary.rename(columns=mm.io.motchallenge_metric_names)
    # .at, not iterrows: a row Series would turn the counts into floats.
    return {str(name): {metric: _plain(summary.at[name, metric]) for metric in METRICS}
            for name in summary.index}


def evaluate_mot_dirs(gt_dir, res_dir, iou_thr=0.5):
    """``evaluate_mot`` on a MOTChallenge gt folder and a results folder.

    Ground truth: ``gt_dir/SEQ/gt/gt.txt`` or ``gt_dir/SEQ/gt.txt``.
    Results: ``res_dir/SEQ.txt``.
    """
    gt_files = find_gt_files(gt_dir)
    return evaluate_mot(gt_files, find_result_files(res_dir, gt_files),
                        iou_thr=iou_thr)


def find_gt_files(gt_dir):
    """``{seq: path}`` for each sub-folder of ``gt_dir`` that holds a gt.txt."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise InputError(f'ground-truth folder not found: {gt_dir}')
    found = {}
    for seq_dir in sorted(p for p in gt_dir.iterdir() if p.is_dir()):
        for candidate in (seq_dir / 'gt' / 'gt.txt', seq_dir / 'gt.txt'):
            if candidate.is_file():
                found[seq_dir.name] = candidate
                break
    if not found:
        raise InputError(f'no SEQ/gt/gt.txt or SEQ/gt.txt under {gt_dir}')
    return found


def find_result_files(res_dir, sequences):
    """``{seq: res_dir/seq.txt}`` for ``sequences``; all must exist."""
    res_dir = Path(res_dir)
    if not res_dir.is_dir():
        raise InputError(f'results folder not found: {res_dir}')
    files = {name: res_dir / f'{name}.txt' for name in sequences}
    missing = [name for name, path in files.items() if not path.is_file()]
    if missing:
        raise InputError(f'no result file in {res_dir} for sequence(s): '
                         + ', '.join(f'{name}.txt' for name in missing))
    return files


def as_mot_frame(data):
    """A path, array or DataFrame as the DataFrame ``mm.io.loadtxt`` makes."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, (str, Path)):
        return _load_txt(Path(data))
    return _frame_from_array(np.asarray(data, dtype=float))


def _load_txt(path):
    if not path.is_file():
        raise InputError(f'MOT txt file not found: {path}')
    if not check_mot_txt(path):
        return _frame_from_array(np.zeros((0, 6)))
    try:
        return mm.io.loadtxt(str(path), fmt='mot15-2D')
    except (ValueError, pd.errors.ParserError) as e:
        raise InputError(f'{path} is not a MOTChallenge txt file: {e}') from e


def check_mot_txt(path):
    """Number of rows of a MOTChallenge txt file; InputError naming the first bad line.

    motmetrics' reader takes anything pandas does: a binary file fails deep in
    a decoder, a word in a number column in its arithmetic, and a short row
    turns silently into NaN boxes. Each line is checked as the reader splits it
    (its ``\\s+|\\t+|,`` separators), so a user learns which line to fix.
    """
    data = path.read_bytes()
    try:
        text = data.decode('utf-8-sig')  # a BOM is fine: pandas drops it too
    except UnicodeDecodeError as e:
        line = data.count(b'\n', 0, e.start) + 1
        raise InputError(f'{path}, line {line}: not a MOTChallenge txt file '
                         f'(binary data: byte 0x{data[e.start]:02x} is not text)') from None
    rows = 0
    for number, line in enumerate(text.split('\n'), 1):  # not splitlines: \f etc. are no lines
        if not line.strip():
            continue  # pandas skips blank lines
        problem = _mot_line_problem(line)
        if problem:
            shown = line if len(line) <= 60 else line[:57] + '...'
            raise InputError(f'{path}, line {number}: not a MOTChallenge txt line, {problem}: '
                             f'{shown!r} (expected frame,id,x,y,w,h[,conf,class,visibility,unused])')
        rows += 1
    return rows


def _mot_line_problem(line):
    fields = _FIELD_SEPARATOR.split(line.strip())
    if not _MIN_FIELDS <= len(fields) <= _MAX_FIELDS:
        return f'{len(fields)} fields where {_MIN_FIELDS} to {_MAX_FIELDS} are read'
    for index, field in enumerate(fields):
        if not field and index >= _MIN_FIELDS:
            continue  # an empty optional column is read as missing
        try:
            value = float(field)
        except ValueError:
            return f'field {index + 1} is not a number'
        if index < _MIN_FIELDS and not math.isfinite(value):
            return f'field {index + 1} is not a finite number'
    return None


def _frame_from_array(rows):
    if rows.size == 0:
        rows = np.zeros((0, 6))
    if rows.ndim != 2 or not 6 <= rows.shape[1] <= 10:
        raise InputError(f'MOT rows must be an (N, 6..10) array, got shape {rows.shape}')
    n_columns = min(rows.shape[1], 9)
    table = np.full((len(rows), 9), -1.0)
    table[:, 6] = 1.0  # a row given without a confidence counts
    table[:, :n_columns] = rows[:, :n_columns]
    index = pd.MultiIndex.from_arrays(
        [table[:, 0].astype(int), table[:, 1].astype(int)], names=['FrameId', 'Id'])
    frame = pd.DataFrame(table[:, 2:], index=index, columns=_COLUMNS)
    # Same 1-based pixel shift as loadtxt, so arrays and files mix freely.
    frame[['X', 'Y']] -= (1, 1)
    return frame


def _apply_ignore_regions(gt, res, max_distance):
    ignored = gt['Confidence'] == 0
    if not ignored.any():
        return gt, res
    gt_frames = dict(iter(gt.groupby(level='FrameId')))
    to_drop = []
    for frame_id, res_frame in res.groupby(level='FrameId'):
        gt_frame = gt_frames.get(frame_id)
        if gt_frame is None:
            continue
        # Assign against all gt boxes, like the devkit, so a box that belongs
        # to a counted object is never swallowed by an ignore region nearby.
        distances = mm.distances.iou_matrix(
            gt_frame[_BOX].values, res_frame[_BOX].values, max_iou=max_distance)
        rows, cols = mm.lap.linear_sum_assignment(distances)
        is_ignored = (gt_frame['Confidence'] == 0).values
        to_drop += [res_frame.index[c] for r, c in zip(rows, cols)
                    if np.isfinite(distances[r, c]) and is_ignored[r]]
    return gt[~ignored], res.drop(index=to_drop)


def _plain(value):
    """numpy scalar -> Python int or float, for JSON."""
    return value.item() if isinstance(value, np.generic) else value


def format_table(metrics):
    """``evaluate_mot``'s result as a fixed-width text table.

    Ratios are printed as percentages like motmetrics' ``render_summary``.
    """
    def cell(metric, value):
        if metric in RATIO_METRICS:
            return f'{100 * value:.1f}%'
        if metric == 'MOTP':
            return f'{value:.3f}'
        return str(value)

    rows = [[''] + METRICS]
    rows += [[name] + [cell(m, values[m]) for m in METRICS]
             for name, values in metrics.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return '\n'.join(
        ' '.join([row[0].ljust(widths[0])]
                 + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])
        for row in rows)
