"""OC-SORT's association (mmtrack's ``OCSORTTracker``) on arrays of tracks.

Same steps and order as ``mmtrack/models/trackers/ocsort_tracker.py``: the
Kalman prediction of the confirmed tracks, OCM (IoU plus the velocity
direction term) against them, then against the tentative ones, OCR (IoU with
each unmatched track's last observation), ORU (a track found again is rolled
back to its state when lost and updated along a straight virtual path), the
same float32 costs, the same ``lap.lapjv`` calls and the same Kalman numbers.
Also mmtrack's quirks: a matched track takes two Kalman updates with its box
(``SortTracker.update_track`` does one, OC-SORT's override another), ORU's
virtual boxes are not predicted between, a frame without boxes leaves every
track as it is, and unmatched boxes in a frame with tracks start new tracks
whatever ``init_track_thr``.

A track's ``obs`` list grows by one entry each frame with boxes; OC-SORT only
reads its last ``vel_delta_t + 1`` entries (``k_step_observation``), its last
real box (``last_obs``) and the run of misses that ends it
(``online_smooth``), which is what a row keeps: fixed size however long the
track lives.

The steps mmtrack takes in torch whose float32 result numpy may not match
(``sqrt`` and ``acos``: some torch builds' sqrt is not correctly rounded,
this one's included; sums of five values, added in torch's order) are
torch's here too, on tensors of mmtrack's shapes; the rest is element-wise
IEEE arithmetic in mmtrack's order.
"""
import lap
import numpy as np
import torch
from mmtrack.models.trackers import OCSORTTracker

from .geometry import cxcyah_to_xyxy, iou_matrix, xyxy_to_cxcyah
from .kalman import KalmanArrays
from .table import TrackTable

ONE, TWO = np.float32(1), np.float32(2)


def _five_sums(boxes):
    """torch's ``sum`` of each (x1, y1, x2, y2, score) row, as mmtrack sums them."""
    return torch.from_numpy(np.ascontiguousarray(boxes)).sum(dim=1).numpy()


def _centres(boxes):
    return (boxes[:, 0] + boxes[:, 2]) / TWO, (boxes[:, 1] + boxes[:, 3]) / TWO


class FastOCSORTTracker(TrackTable, OCSORTTracker):
    """A drop-in ``OCSORTTracker``: built from the same settings, called the
    same way by ``mmtrack.models.mot.OCSORT``, returning the same
    (bboxes, labels, ids)."""
    LATER_FLAGS = TrackTable.LATER_FLAGS + ('saved_fresh',)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reset()        # BaseTracker's __init__ resets before vel_delta_t is set

    def reset(self):
        self.num_tracks = 0
        depth = self.vel_delta_t + 1 if hasattr(self, 'vel_delta_t') else 1
        self.table = self.new_table(
            # the last ``depth`` entries of mmtrack's ``obs``, newest last, and
            # whether each is a box: not a miss, nor before the track's birth
            obs=np.zeros((0, depth, 5), np.float32), obs_seen=np.zeros((0, depth), bool),
            last_boxes=np.zeros((0, 5), np.float32),        # ``last_obs``
            velocities=np.zeros((0, 2), np.float32), moving=np.zeros(0, bool),
            tracked=np.zeros(0, bool), misses=np.zeros(0, np.int64),   # trailing misses
            # the Kalman state before the prediction that lost the track (ORU)
            saved_means=np.zeros((0, 8)), saved_blocks=np.zeros((0, 4, 2, 2)),
            saved_fresh=np.zeros(0, bool))

    @property
    def tracks(self):
        """{id: {'frame_id', 'tentative', 'tracked', 'bbox', 'velocity', 'mean',
        'covariance'}}: a read-only view, in mmtrack's dict order."""
        t = self.table
        covariances = KalmanArrays.full(t['blocks'])
        return {int(i): dict(frame_id=int(t['last_frames'][k]), tentative=bool(t['tentative'][k]),
                             tracked=bool(t['tracked'][k]), bbox=t['last_boxes'][k],
                             velocity=t['velocities'][k] if t['moving'][k] else None,
                             mean=t['means'][k], covariance=covariances[k])
                for k, i in enumerate(t['ids'])}

    # -- association --------------------------------------------------------------
    def _k_step_observations(self, rows):
        """``k_step_observation``: the entry ``vel_delta_t`` before the newest
        where there is one and it is a box, else the last box."""
        t = self.table
        return np.where(t['obs_seen'][rows, :1], t['obs'][rows, 0], t['last_boxes'][rows])

    def _direction_cost(self, rows, dets):
        """OCM's term, ``valid_norm_angle * vel_consist_weight`` (N, M): the
        angle between each track's velocity and the direction from its
        k-step observation to each box, as ``vel_direction_batch`` and
        ``ocm_assign_ids`` compute it (torch, float32, mmtrack's shapes)."""
        t = self.table
        k_obs = self._k_step_observations(rows)
        # valid1 (the velocity is not the (-1, -1) placeholder: a unit vector
        # never sums to -2) and valid2 (the k-step observation does not sum to -4)
        valid = t['moving'][rows] & (_five_sums(k_obs) != -4)
        cx1, cy1 = (torch.from_numpy(c) for c in _centres(k_obs))
        cx2, cy2 = (torch.from_numpy(c) for c in _centres(dets))
        dy = cy2[None, :] - cy1[:, None]
        dx = cx2[None, :] - cx1[:, None]
        norm = torch.sqrt(dy ** 2 + dx ** 2) + 1e-6
        velocities = torch.from_numpy(np.where(t['moving'][rows, None], t['velocities'][rows],
                                               np.float32(-1)))
        angle_cos = torch.stack([dy / norm, dx / norm], dim=-1).mul(velocities[:, None, :]).sum(dim=-1)
        angle = torch.acos(torch.clamp(angle_cos, min=-1, max=1))
        norm_angle = (angle - np.pi / 2.) / np.pi
        valid_norm_angle = norm_angle * torch.from_numpy(valid.astype(np.int32))[:, None]
        return valid_norm_angle.numpy() * self.vel_consist_weight

    def _assign(self, track_boxes, dets, direction_rows=None):
        """``ocm_assign_ids`` (``direction_rows``: the tracks' rows) or
        ``ocr_assign_ids`` (without): the track index of each box, -1 where none."""
        ious = iou_matrix(track_boxes, dets[:, :4])
        if self.weight_iou_with_det_scores:
            ious = ious * dets[:, 4][None]
        dists = ONE - ious
        if dists.size == 0:
            return np.full(len(dets), -1, np.int64)
        if direction_rows is not None:
            dists += self._direction_cost(direction_rows, dets)
        _, _, col = lap.lapjv(dists, extend_cost=True, cost_limit=1 - self.match_iou_thr)
        return col

    def _ocm(self, rows, dets):
        # mmtrack's track box: the mean as float32, x1y1x2y2
        boxes = cxcyah_to_xyxy(self.table['means'][rows, :4].astype(np.float32))
        return self._assign(boxes, dets, rows)

    def track(self, img, img_metas, model, bboxes, labels, frame_id, rescale=False, **kwargs):
        self._kalman_for(model)
        t = self.table
        boxes = bboxes.detach().float().cpu().numpy()
        scores = boxes[:, -1]

        if self.empty or len(boxes) == 0:
            order = np.nonzero(scores > self.init_track_thr)[0]
            ids = np.arange(self.num_tracks, self.num_tracks + len(order), dtype=np.int64)
            self.num_tracks += len(order)
            matched_rows = np.zeros(0, np.int64)
        else:
            dets = np.nonzero(scores > self.obj_score_thr)[0]
            confirmed = np.nonzero(~t['tentative'])[0]
            unconfirmed = np.nonzero(t['tentative'])[0]

            # 1. the confirmed tracks' state saved while tracked (for ORU),
            # then predicted (the height's velocity zeroed for those not seen
            # in the previous frame, before saving)
            t['means'][confirmed[t['last_frames'][confirmed] != frame_id - 1], 7] = 0
            kept = confirmed[t['tracked'][confirmed]]
            for key in ('means', 'blocks', 'fresh'):
                t[f'saved_{key}'][kept] = t[key][kept]
            self._kalman_predict(confirmed)

            # 2. OCM: the boxes against the confirmed tracks' predictions
            of_first = self._ocm(confirmed, boxes[dets])
            first = of_first > -1
            # 3. OCM: the boxes left against the tentative tracks
            rest = dets[~first]
            of_rest = self._ocm(unconfirmed, boxes[rest])
            second = of_rest > -1
            rest_left = rest[~second]
            matched_rows = np.concatenate([confirmed[of_first[first]], unconfirmed[of_rest[second]]])

            # 4. OCR: the boxes left against every unmatched track's last box
            unmatched = np.setdiff1d(np.arange(len(t['ids'])), matched_rows)   # sorted: dict order
            third_dets, third_rows = np.zeros(0, np.int64), np.zeros(0, np.int64)
            if len(unmatched) > 0:
                of_left = self._assign(t['last_boxes'][unmatched, :4], boxes[rest_left])
                third = of_left > -1
                third_dets, third_rows = rest_left[third], unmatched[of_left[third]]
                rest_left = rest_left[~third]
            matched_rows = np.concatenate([matched_rows, third_rows])
            matched_dets = np.concatenate([dets[first], rest[second], third_dets])

            # 5. ORU for the tracks found again; the others missed this frame
            self._recover(matched_rows, boxes[matched_dets])
            missed = np.setdiff1d(np.arange(len(t['ids'])), matched_rows)
            self._missed(missed)

            # 6. new ids for the boxes left, in order
            order = np.concatenate([matched_dets, rest_left])
            ids = np.concatenate([t['ids'][matched_rows],
                                  np.arange(self.num_tracks, self.num_tracks + len(rest_left))])
            self.num_tracks += len(rest_left)

        self._update(matched_rows, ids, boxes[order], frame_id)
        order_t = torch.from_numpy(order).to(bboxes.device)
        return (bboxes[order_t], labels[order_t],
                torch.from_numpy(ids).to(device=labels.device, dtype=labels.dtype))

    # -- bookkeeping ----------------------------------------------------------------
    def _recover(self, rows, boxes):
        """``online_smooth`` for the tracks at ``rows`` that were lost, matched
        to ``boxes``: back to the state saved when lost, then one Kalman update
        (no prediction between, as mmtrack) per missed frame with a box on
        the line from the last box seen to the new one."""
        t = self.table
        lost = ~t['tracked'][rows]
        rows, boxes = rows[lost], boxes[lost]
        if len(rows) == 0:
            return
        misses = t['misses'][rows]
        last = t['last_boxes'][rows, :4]
        shift = (boxes[:, :4] - last) / (misses + 1).astype(np.float32)[:, None]
        means, blocks, fresh = t['saved_means'][rows], t['saved_blocks'][rows], t['saved_fresh'][rows]
        for i in range(int(misses.max())):
            on = misses > i
            virtual = xyxy_to_cxcyah(last[on] + np.float32(i + 1) * shift[on])
            means[on], blocks[on] = self._kalman.update(means[on], blocks[on], virtual, fresh[on])
            fresh[on] = False
        t['means'][rows], t['blocks'][rows], t['fresh'][rows] = means, blocks, fresh

    def _push_obs(self, rows, boxes=None):
        """Appends to the ``obs`` of the tracks at ``rows`` their ``boxes``, or a miss."""
        t = self.table
        t['obs'][rows, :-1] = t['obs'][rows, 1:]
        t['obs_seen'][rows, :-1] = t['obs_seen'][rows, 1:]
        t['obs_seen'][rows, -1] = boxes is not None
        if boxes is not None:
            t['obs'][rows, -1] = boxes

    def _missed(self, rows):
        """Unmatched in a frame with boxes."""
        self.table['tracked'][rows] = False
        self.table['misses'][rows] += 1
        self._push_obs(rows)

    def _velocities(self, rows, boxes):
        """``vel_direction(k_step_observation, box)`` of the tracks at ``rows``
        (their new box already in ``obs``): (directions, whether real)."""
        k_obs = self._k_step_observations(rows)
        moving = ~(_five_sums(k_obs) < 0) & ~(_five_sums(boxes) < 0)
        cx1, cy1 = _centres(k_obs)
        cx2, cy2 = _centres(boxes)
        dy, dx = torch.from_numpy(cy2 - cy1), torch.from_numpy(cx2 - cx1)
        norm = torch.sqrt(dy ** 2 + dx ** 2) + 1e-6
        return torch.stack([dy / norm, dx / norm], dim=-1).numpy(), moving

    def _update(self, matched_rows, ids, boxes, frame_id):
        """mmtrack's ``update``: the matched tracks (``matched_rows``, the
        first boxes, in order) take their box (two Kalman updates, as
        mmtrack's ``update_track`` and its parent's), new ones are born at
        the end, in order; then the invalid ones go."""
        t = self.table
        measurements = xyxy_to_cxcyah(boxes[:, :4])
        count = len(matched_rows)
        if count:
            rows, seen = matched_rows, boxes[:count]
            self._seen(rows, frame_id, measurements[:count])         # the first update
            self._kalman_update(rows, measurements[:count])
            t['tracked'][rows] = True
            t['misses'][rows] = 0
            self._push_obs(rows, seen)
            t['last_boxes'][rows] = seen
            t['velocities'][rows], t['moving'][rows] = self._velocities(rows, seen)
        born = len(ids) - count
        if born:
            depth = t['obs'].shape[1]
            obs = np.zeros((born, depth, 5), np.float32)
            obs[:, -1] = boxes[count:]
            obs_seen = np.zeros((born, depth), bool)
            obs_seen[:, -1] = True
            # tracks born in frame 0 are confirmed at once (OCSORTTracker.init_track)
            self._born(ids[count:], frame_id, measurements[count:], tentative=frame_id != 0,
                       obs=obs, obs_seen=obs_seen, last_boxes=boxes[count:], velocities=np.full((born, 2), -1, np.float32),
                       moving=np.zeros(born, bool), tracked=np.ones(born, bool),
                       misses=np.zeros(born, np.int64), saved_means=np.zeros((born, 8)),
                       saved_blocks=np.zeros((born, 4, 2, 2)), saved_fresh=np.zeros(born, bool))
        self._drop_invalid(frame_id)
