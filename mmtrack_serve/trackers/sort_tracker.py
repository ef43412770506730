"""SORT and DeepSORT's association (mmtrack's ``SortTracker``) on arrays of tracks.

Same steps and order as ``mmtrack/models/trackers/sort_tracker.py``, the same
float32 IoU, ReID distances (``torch.cdist`` on the same embedding means),
gating, Kalman numbers and ``motmetrics.lap.linear_sum_assignment`` calls;
only the tracks are held differently: one row per track in numpy arrays, in
the order of mmtrack's ``tracks`` dict (by birth, so ids ascend). A track
keeps its last box, Kalman state and, with ReID, its last ``num_samples``
embeddings: all that mmtrack reads of its lists.
"""
import numpy as np
import torch
from mmtrack.core import imrenormalize
from mmtrack.models.trackers import SortTracker
from motmetrics.lap import linear_sum_assignment

from .geometry import iou_matrix, xyxy_to_cxcyah
from .kalman import KalmanArrays
from .table import TrackTable


class FastSortTracker(TrackTable, SortTracker):
    """A drop-in ``SortTracker``: built from the same settings, called the
    same way by ``mmtrack.models.mot.DeepSORT``, returning the same
    (bboxes, labels, ids)."""

    def reset(self):
        self.num_tracks = 0
        samples = self._embed_samples() if hasattr(self, 'reid') else 1
        self.table = self.new_table(boxes=np.zeros((0, 4), np.float32),
                                    # newest last; ``embed_counts`` of them are real
                                    embeds=np.zeros((0, samples, 0), np.float32),
                                    embed_counts=np.zeros(0, np.int64))

    def _embed_samples(self):
        """Embeddings a track keeps: reid's num_samples (None: the last one)."""
        if not self.with_reid:
            return 1
        return self.reid.get('num_samples', None) or 1

    @property
    def tracks(self):
        """{id: {'frame_id', 'tentative', 'bbox', 'mean', 'covariance'}}: a
        read-only view, in mmtrack's dict order."""
        t = self.table
        covariances = KalmanArrays.full(t['blocks'])
        return {int(i): dict(frame_id=int(t['last_frames'][k]), tentative=bool(t['tentative'][k]),
                             bbox=t['boxes'][k], mean=t['means'][k], covariance=covariances[k])
                for k, i in enumerate(t['ids'])}

    # -- association --------------------------------------------------------------
    def _track_embeds(self, rows, device):
        """``get('embeds', ids, num_samples, 'mean')`` for the tracks at ``rows``:
        the mean of each one's last num_samples embeddings, taken by torch on
        ``device`` (the ReID's), as mmtrack takes it."""
        t = self.table
        if self.reid.get('num_samples', None) is None:
            return torch.from_numpy(t['embeds'][rows, -1]).to(device)
        out = torch.empty((len(rows), t['embeds'].shape[2]), device=device)
        counts = t['embed_counts'][rows]
        for k in np.unique(counts):
            at = np.nonzero(counts == k)[0]
            out[torch.from_numpy(at).to(device)] = torch.from_numpy(
                t['embeds'][rows[at], -k:]).to(device).mean(dim=1)
        return out

    def track(self, img, img_metas, model, bboxes, labels, frame_id, rescale=False, **kwargs):
        self._kalman_for(model)
        t = self.table
        if self.with_reid:
            if self.reid.get('img_norm_cfg', False):
                reid_img = imrenormalize(img, img_metas[0]['img_norm_cfg'], self.reid['img_norm_cfg'])
            else:
                reid_img = img.clone()

        valid_inds = bboxes[:, -1] > self.obj_score_thr
        bboxes = bboxes[valid_inds]
        labels = labels[valid_inds]
        boxes = bboxes.detach().float().cpu().numpy()
        embeds = None

        if self.empty or len(boxes) == 0:
            ids = np.arange(self.num_tracks, self.num_tracks + len(boxes), dtype=np.int64)
            self.num_tracks += len(boxes)
            if self.with_reid:
                embeds = model.reid.simple_test(
                    self.crop_imgs(reid_img, img_metas, bboxes[:, :4].clone(), rescale))
        else:
            ids = np.full(len(boxes), -1, np.int64)
            # motion: every track predicted; gating costs of each box
            self._kalman_predict(slice(None))
            costs = self._kalman.gating_distance(t['means'], t['blocks'],
                                                 xyxy_to_cxcyah(boxes[:, :4]))
            costs[costs > self._kalman.gating_threshold] = np.nan

            confirmed = np.nonzero(~t['tentative'])[0]
            if self.with_reid:
                embeds = model.reid.simple_test(
                    self.crop_imgs(reid_img, img_metas, bboxes[:, :4].clone(), rescale))
                if len(confirmed) > 0:
                    reid_dists = torch.cdist(self._track_embeds(confirmed, embeds.device), embeds).cpu().numpy()
                    reid_dists[~np.isfinite(costs[confirmed, :])] = np.nan
                    row, col = linear_sum_assignment(reid_dists)
                    for r, c in zip(row, col):
                        dist = reid_dists[r, c]
                        if not np.isfinite(dist):
                            continue
                        if dist <= self.reid['match_score_thr']:
                            ids[c] = t['ids'][confirmed[r]]

            # IoU: the tracks seen in the previous frame and not matched yet,
            # against the boxes left
            active = np.nonzero(~np.isin(t['ids'], ids) & (t['last_frames'] == frame_id - 1))[0]
            if len(active) > 0:
                active_dets = np.nonzero(ids == -1)[0]
                dists = 1 - iou_matrix(t['boxes'][active], boxes[active_dets, :4])
                row, col = linear_sum_assignment(dists)
                for r, c in zip(row, col):
                    if dists[r, c] < 1 - self.match_iou_thr:
                        ids[active_dets[c]] = t['ids'][active[r]]

            new = ids == -1
            ids[new] = np.arange(self.num_tracks, self.num_tracks + int(new.sum()))
            self.num_tracks += int(new.sum())

        self._update(ids, boxes, embeds, frame_id)
        return bboxes, labels, torch.from_numpy(ids).to(labels.device)

    # -- bookkeeping ----------------------------------------------------------------
    def _update(self, ids, boxes, embeds, frame_id):
        """mmtrack's ``update``: a known track takes its box (Kalman update)
        and embedding, new ones are born at the end, in order (tentative);
        then the invalid ones go."""
        t = self.table
        embeds = None if embeds is None else embeds.detach().float().cpu().numpy()
        if embeds is not None and len(embeds) and t['embeds'].shape[2] != embeds.shape[1]:
            # the ReID's width, known from its first output (only ever set on an empty table)
            t['embeds'] = np.zeros((len(t['ids']), t['embeds'].shape[1], embeds.shape[1]), np.float32)
        measurements = xyxy_to_cxcyah(boxes[:, :4])
        rows, known = self._rows(ids)
        if known.any():
            at = rows[known]
            self._seen(at, frame_id, measurements[known])
            t['boxes'][at] = boxes[known, :4]
            if embeds is not None:
                t['embeds'][at, :-1] = t['embeds'][at, 1:]
                t['embeds'][at, -1] = embeds[known]
                t['embed_counts'][at] = np.minimum(t['embed_counts'][at] + 1, t['embeds'].shape[1])
        born = ~known
        if born.any():
            count = int(born.sum())
            new_embeds = np.zeros((count,) + t['embeds'].shape[1:], np.float32)
            if embeds is not None:
                new_embeds[:, -1] = embeds[born]
            self._born(ids[born], frame_id, measurements[born], tentative=True,
                       boxes=boxes[born, :4], embeds=new_embeds,
                       embed_counts=np.full(count, int(embeds is not None), np.int64))
        self._drop_invalid(frame_id)
