"""What the fast trackers share: their tracks as ``self.table``, a dict of
numpy arrays with one row per track, in the order of mmtrack's ``tracks``
dict (by birth; ids are handed out in increasing order, so they ascend).

Every array is data (``snapshot.is_data_type``), so a stream's snapshot holds
the table as it is.
"""
import numpy as np

from .kalman import KalmanArrays


class TrackTable:
    """Mixin of a fast tracker (first base, before the mmtrack class it
    replaces): the table and the bookkeeping mmtrack's ``BaseTracker.update``
    and ``pop_invalid_tracks`` do on dicts of lists."""

    # flag columns a snapshot written before them lacks: all False there
    # (a restored mean is past its first Kalman step, or float64 rounds it)
    LATER_FLAGS = ('fresh',)

    @staticmethod
    def new_table(**extra):
        """Id, last frame seen, boxes seen (counted up to num_tentatives: all
        that mmtrack's ``len(bboxes) >= num_tentatives`` reads), tentative or
        not, Kalman mean and covariance blocks, whether the mean is fresh
        (``kalman``: mmtrack still holds it as float32); plus ``extra`` columns."""
        return dict(ids=np.zeros(0, np.int64), last_frames=np.zeros(0, np.int64),
                    hits=np.zeros(0, np.int64), tentative=np.zeros(0, bool),
                    means=np.zeros((0, 8)), blocks=np.zeros((0, 4, 2, 2)),
                    fresh=np.zeros(0, bool), **extra)

    @property
    def empty(self):
        return len(self.table['ids']) == 0

    @property
    def ids(self):
        return self.table['ids'].tolist()

    def _kalman_for(self, model):
        if not hasattr(self, '_kalman'):
            self.kf = model.motion
            self._kalman = KalmanArrays(self.kf)
            for key in self.LATER_FLAGS:
                self.table.setdefault(key, np.zeros(len(self.table['ids']), bool))
        return self._kalman

    def _rows(self, ids):
        """(row of each id, whether it is a known track)."""
        known_ids = self.table['ids']
        rows = np.searchsorted(known_ids, ids)
        known = rows < len(known_ids)
        known[known] = known_ids[rows[known]] == ids[known]
        return rows, known

    def _seen(self, rows, frame_id, measurements):
        """The tracks at ``rows`` matched in ``frame_id``: confirmed after
        num_tentatives boxes, Kalman-updated with their (cx, cy, a, h) box."""
        t = self.table
        t['last_frames'][rows] = frame_id
        t['hits'][rows] = np.minimum(t['hits'][rows] + 1, self.num_tentatives)
        t['tentative'][rows] &= t['hits'][rows] < self.num_tentatives
        self._kalman_update(rows, measurements)

    def _kalman_predict(self, rows):
        """The Kalman states at ``rows`` one frame on."""
        t = self.table
        t['means'][rows], t['blocks'][rows] = self._kalman.predict(
            t['means'][rows], t['blocks'][rows], t['fresh'][rows])
        t['fresh'][rows] = False

    def _kalman_update(self, rows, measurements):
        """The Kalman states at ``rows`` corrected with ``measurements``."""
        t = self.table
        t['means'][rows], t['blocks'][rows] = self._kalman.update(
            t['means'][rows], t['blocks'][rows], measurements, t['fresh'][rows])
        t['fresh'][rows] = False

    def _born(self, ids, frame_id, measurements, tentative, **extra):
        """New tracks at the end of the table, in order."""
        t = self.table
        count = len(ids)
        means, blocks = self._kalman.initiate(measurements)
        added = dict(ids=ids, last_frames=np.full(count, frame_id, np.int64),
                     hits=np.ones(count, np.int64), tentative=np.full(count, tentative),
                     means=means, blocks=blocks, fresh=np.ones(count, bool), **extra)
        for key, values in added.items():
            t[key] = np.concatenate([t[key], values])

    def _drop_invalid(self, frame_id):
        """mmtrack's ``pop_invalid_tracks`` (ByteTracker's and SortTracker's):
        gone for num_frames_retain frames, or tentative and not seen now."""
        t = self.table
        gone = (frame_id - t['last_frames'] >= self.num_frames_retain) | (
            t['tentative'] & (t['last_frames'] != frame_id))
        if gone.any():
            keep = ~gone
            for key in t:
                t[key] = t[key][keep]
