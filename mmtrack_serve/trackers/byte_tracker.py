"""ByteTrack's association (mmtrack's ``ByteTracker``) on arrays of tracks.

Same algorithm, same order, the same float32 costs, the same ``lap.lapjv``
calls and the same Kalman numbers as ``mmtrack/models/trackers/byte_tracker.py``;
only the way tracks are held changes: one row per track in a few numpy arrays,
in the order mmtrack's ``tracks`` dict keeps them (by birth, so ids ascend),
instead of a dict of per-track lists of 1-element tensors that grow every
frame. So the ids are mmtrack's, the boxes are the detections mmtrack reports,
and a track's memory is a fixed number of bytes however long it lives.
"""
import lap
import numpy as np
import torch
from mmtrack.models.trackers import ByteTracker

from .geometry import cxcyah_to_xyxy, iou_matrix, xyxy_to_cxcyah
from .kalman import KalmanArrays
from .table import TrackTable

CATEGORY_COST = np.float32(1e6)     # mmtrack's cost between a track and a box of another class


class FastByteTracker(TrackTable, ByteTracker):
    """A drop-in ``ByteTracker``: built from the same settings, called the
    same way by ``mmtrack.models.mot.ByteTrack``, returning the same
    (bboxes, labels, ids)."""

    def reset(self):
        self.num_tracks = 0
        self.table = self.new_table(labels=np.zeros(0, np.int64))

    @property
    def tracks(self):
        """{id: {'label', 'frame_id', 'tentative', 'mean', 'covariance'}}: a
        read-only view, in mmtrack's dict order."""
        t = self.table
        covariances = KalmanArrays.full(t['blocks'])
        return {int(i): dict(label=int(t['labels'][k]), frame_id=int(t['last_frames'][k]),
                             tentative=bool(t['tentative'][k]), mean=t['means'][k],
                             covariance=covariances[k])
                for k, i in enumerate(t['ids'])}

    # -- association --------------------------------------------------------------
    def _assign(self, track_boxes, rows, boxes, labels, weighted, match_iou_thr):
        """mmtrack's ``assign_ids`` for the tracks at ``rows`` (``track_boxes``:
        every track's predicted box): (det index per track, track index per
        det), -1 where unmatched."""
        ious = iou_matrix(track_boxes[rows], boxes[:, :4])
        if weighted:
            ious = ious * boxes[:, 4][None]
        dists = np.float32(1) - ious
        same_class = labels[None, :] == self.table['labels'][rows][:, None]
        if not same_class.all():                 # adding 0 changes nothing: only the others
            dists = dists + np.where(same_class, np.float32(0), CATEGORY_COST)
        if dists.size > 0:
            _, row, col = lap.lapjv(dists, extend_cost=True, cost_limit=1 - match_iou_thr)
            return row, col
        return np.full(len(rows), -1, np.int64), np.full(len(boxes), -1, np.int64)

    def track(self, img, img_metas, model, bboxes, labels, frame_id, rescale=False, **kwargs):
        self._kalman_for(model)
        t = self.table
        boxes = bboxes.detach().float().cpu().numpy()
        det_labels = labels.detach().cpu().numpy().astype(np.int64)
        scores = boxes[:, -1]

        if self.empty or len(boxes) == 0:
            order = np.nonzero(scores > self.init_track_thr)[0]
            ids = np.arange(self.num_tracks, self.num_tracks + len(order), dtype=np.int64)
            self.num_tracks += len(order)
        else:
            first = np.nonzero(scores > self.obj_score_thrs['high'])[0]
            second = np.nonzero((scores <= self.obj_score_thrs['high'])
                                & (scores > self.obj_score_thrs['low']))[0]
            confirmed = np.nonzero(~t['tentative'])[0]
            unconfirmed = np.nonzero(t['tentative'])[0]

            # 1. Kalman prediction of the confirmed tracks (the height's
            # velocity zeroed for those lost in the previous frame)
            seen_last = t['last_frames'][confirmed] == frame_id - 1
            t['means'][confirmed[~seen_last], 7] = 0
            self._kalman_predict(confirmed)
            # every track's box as mmtrack's assign_ids makes it: float32, x1y1x2y2
            track_boxes = cxcyah_to_xyxy(t['means'][:, :4].astype(np.float32))

            # 2. high-score boxes against the confirmed tracks
            first_ids = np.full(len(first), -1, np.int64)
            track_of_first, det_of_first = self._assign(
                track_boxes, confirmed, boxes[first], det_labels[first],
                self.weight_iou_with_det_scores, self.match_iou_thrs['high'])
            matched = det_of_first > -1
            first_ids[matched] = t['ids'][confirmed[det_of_first[matched]]]

            # 3. the high-score boxes left against the tentative tracks
            rest = first[~matched]
            rest_ids = first_ids[~matched]
            _, det_of_rest = self._assign(
                track_boxes, unconfirmed, boxes[rest], det_labels[rest],
                self.weight_iou_with_det_scores, self.match_iou_thrs['tentative'])
            hit = det_of_rest > -1
            rest_ids[hit] = t['ids'][unconfirmed[det_of_rest[hit]]]

            # 4. low-score boxes against the confirmed tracks unmatched in 2
            # and seen in the previous frame
            waiting = confirmed[(track_of_first == -1) & seen_last]
            second_ids = np.full(len(second), -1, np.int64)
            _, det_of_second = self._assign(track_boxes, waiting, boxes[second], det_labels[second],
                                            False, self.match_iou_thrs['low'])
            hit = det_of_second > -1
            second_ids[hit] = t['ids'][waiting[det_of_second[hit]]]

            # 5. the boxes kept, in mmtrack's order; 6. new ids for the rest
            order = np.concatenate([first[matched], rest, second[hit]])
            ids = np.concatenate([first_ids[matched], rest_ids, second_ids[hit]])
            new = ids == -1
            ids[new] = np.arange(self.num_tracks, self.num_tracks + int(new.sum()))
            self.num_tracks += int(new.sum())

        self._update(ids, boxes[order], det_labels[order], frame_id)
        order_t = torch.from_numpy(order).to(bboxes.device)
        return (bboxes[order_t], labels[order_t],
                torch.from_numpy(ids).to(device=labels.device, dtype=labels.dtype))

    # -- bookkeeping ----------------------------------------------------------------
    def _update(self, ids, boxes, labels, frame_id):
        """mmtrack's ``update``: a known track takes its box (Kalman update),
        new ones are born at the end, in order; then the invalid ones go."""
        measurements = xyxy_to_cxcyah(boxes[:, :4])
        rows, known = self._rows(ids)
        if known.any():
            self._seen(rows[known], frame_id, measurements[known])
        born = ~known
        if born.any():
            # tracks born in frame 0 are confirmed at once (ByteTracker.init_track)
            self._born(ids[born], frame_id, measurements[born], tentative=frame_id != 0,
                       labels=labels[born])
        self._drop_invalid(frame_id)
