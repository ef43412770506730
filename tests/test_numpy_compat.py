"""The numpy names mmdet / mmtrack / motmetrics use, on the numpy installed
(1.23.5 in .venv, 1.26 in .venv-py312: `make test-py312`)."""
import warnings

import numpy as np
import pytest

import mmtrack_serve  # noqa: F401  (installs the names, as every entry point does)
from mmtrack_serve import numpy_compat


def test_every_name_those_packages_use_is_there_after_import():
    assert numpy_compat.missing() == []
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # numpy 1.23 still has them, deprecated
        assert np.array([1.7, 2.2]).astype(np.int).tolist() == [1, 2]
        assert np.zeros(2).astype(np.bool).dtype == np.bool_
        assert np.dtype(np.float) == np.float64
    assert np.asfarray([1, 2]).dtype == np.float64
    assert np.asfarray(np.ones(2, np.float32)).dtype == np.float64
    assert np.asfarray([1], dtype=np.int32).dtype == np.float64
    assert np.asfarray([1], dtype=np.float32).dtype == np.float32


def test_a_second_install_adds_nothing():
    assert numpy_compat.install() == []


def test_only_names_numpy_lacks_are_added(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        had_int = 'int' in vars(np)  # set by install() on a numpy without it
    if not had_int:
        pytest.skip(f'numpy {np.__version__} still has np.int of its own')
    monkeypatch.delattr(np, 'int')
    assert numpy_compat.install() == ['int']
    assert np.int is int


def test_mmtracks_and_motmetrics_own_code_runs():
    # acc_single_video calls np.int, and np.bool where there are ignore regions;
    # motmetrics' iou_matrix calls np.asfarray.
    import motmetrics as mm
    from mmtrack.core.evaluation.eval_mot import acc_single_video
    boxes = np.array([[10, 10, 50, 90], [100, 40, 140, 120]], np.float32)
    gt = dict(bboxes=boxes, labels=np.zeros(2, np.int64), instance_ids=np.arange(2),
              bboxes_ignore=np.array([[300, 300, 340, 380]], np.float32))
    found = [np.c_[np.arange(2), boxes, np.full(2, 0.9)].astype(np.float32)]
    accumulator, = acc_single_video([found] * 3, [gt] * 3)
    summary = mm.metrics.create().compute(accumulator, metrics=['mota', 'num_switches'])
    assert summary['mota'].item() == pytest.approx(1.0)
    assert mm.distances.iou_matrix(boxes, boxes, max_iou=0.5).diagonal().tolist() == [0, 0]
