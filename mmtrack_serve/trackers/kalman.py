"""mmtrack's ``KalmanFilter`` (motion/kalman_filter.py) over all tracks at once,
with mmtrack's numbers bit for bit.

mmtrack runs the filter one track at a time on 8x8 matrices (``np.dot``,
``multi_dot``, scipy's Cholesky solve). Its model never couples one box
coordinate with another: the motion matrix adds each velocity to its own
coordinate, and every noise and the measurement matrix are diagonal. So from
a diagonal start each covariance stays four independent 2x2 blocks (position
i with velocity i), all else exactly 0.0. Here a track's covariance is those
blocks, ``blocks[n, i] = [[P[i, i], P[i, i+4]], [P[i+4, i], P[i+4, i+4]]]``,
and each step is a few element-wise operations over every track.

Every product mmtrack's BLAS forms has a single non-zero term (or two added
once), so element-wise arithmetic in the same order rounds the same. The one
solve, ``cho_solve`` with a diagonal matrix, is OpenBLAS's multiplication by
the reciprocal of the Cholesky factor, twice. mmtrack's update leaves the
blocks slightly asymmetric (the two off-diagonal terms round differently), so
both are kept. ``tests/test_trackers.py`` checks all of it against mmtrack's
filter, track by track.

A fresh track's mean is float32 in mmtrack (the measurement's dtype) until
its first predict or update makes it float64. Stored here as float64, which
holds it exactly. Every step multiplies the mean's height, a float32 scalar
while fresh, by Python floats: numpy 1.x rounds that product as float64,
numpy 2 (NEP 50) as float32. ``HEIGHT_PRODUCT`` is the installed numpy's
answer, and each step takes a ``fresh`` mask (the rows whose mean mmtrack
still holds as float32), so ours rounds as mmtrack's does under either.
"""
import numpy as np

# the dtype of a float32 scalar times a Python float, as mmtrack's initiate forms it
HEIGHT_PRODUCT = type(np.float32(1) * 1.0)

PP, PV, VP, VV = (0, 0), (0, 1), (1, 0), (1, 1)    # indices into a 2x2 block


class KalmanArrays:
    """The filter of one ``mmtrack.models.motion.KalmanFilter`` (its weights
    and gating threshold), on arrays of tracks: ``means`` (N, 8) and
    ``blocks`` (N, 4, 2, 2), float64."""

    def __init__(self, kf):
        self.w_pos = kf._std_weight_position
        self.w_vel = kf._std_weight_velocity
        self.center_only = kf.center_only
        self.gating_threshold = kf.gating_threshold

    @staticmethod
    def supports(kf):
        """True for mmtrack's own KalmanFilter with its constant-velocity, dt=1 model."""
        from mmtrack.models.motion import KalmanFilter
        if type(kf) is not KalmanFilter:
            return False
        expected = np.eye(8)
        expected[np.arange(4), np.arange(4) + 4] = 1.0
        return (np.array_equal(kf._motion_mat, expected)
                and np.array_equal(kf._update_mat, np.eye(4, 8)))

    @staticmethod
    def full(blocks):
        """(N, 8, 8) covariances from (N, 4, 2, 2) blocks (tests, inspection)."""
        cov = np.zeros((len(blocks), 8, 8))
        i = np.arange(4)
        cov[:, i, i] = blocks[:, :, 0, 0]
        cov[:, i, i + 4] = blocks[:, :, 0, 1]
        cov[:, i + 4, i] = blocks[:, :, 1, 0]
        cov[:, i + 4, i + 4] = blocks[:, :, 1, 1]
        return cov

    @staticmethod
    def _noise(h, weight, fixed, fresh=None):
        """np.square([w*h, w*h, fixed, w*h]) per track, (N, 4), squared in
        float64 (numpy makes that list a float64 array); w*h rounded as
        HEIGHT_PRODUCT on the ``fresh`` rows."""
        # under numpy 1.x (HEIGHT_PRODUCT float64) fresh rows round as the others
        if fresh is None or HEIGHT_PRODUCT is np.float64 or not fresh.any():
            std = weight * h
        else:
            std = np.where(fresh, weight * h.astype(HEIGHT_PRODUCT), weight * h)
        return np.square(np.stack([std, std, np.full(std.shape, fixed), std], -1))

    def initiate(self, measurements):
        """(N, 4) cx, cy, a, h (float32) -> means (N, 8), blocks (N, 4, 2, 2),
        all fresh."""
        m = np.asarray(measurements)
        means = np.zeros((len(m), 8))
        means[:, :4] = m
        blocks = np.zeros((len(m), 4, 2, 2))
        fresh = np.ones(len(m), bool)
        blocks[..., 0, 0] = self._noise(means[:, 3], 2 * self.w_pos, 1e-2, fresh)
        blocks[..., 1, 1] = self._noise(means[:, 3], 10 * self.w_vel, 1e-5, fresh)
        return means, blocks

    def predict(self, means, blocks, fresh=None):
        """New (means, blocks) one frame on: F x, F P F^T + Q. The results
        are not fresh."""
        h = means[:, 3]
        new_means = means.copy()
        new_means[:, :4] += means[:, 4:]
        pp, pv, vp, vv = blocks[..., 0, 0], blocks[..., 0, 1], blocks[..., 1, 0], blocks[..., 1, 1]
        new = np.empty_like(blocks)
        # multi_dot((F, P, F.T)) is F (P F^T): columns first, then rows
        new[..., 0, 0] = (pp + pv) + (vp + vv) + self._noise(h, self.w_pos, 1e-2, fresh)
        new[..., 0, 1] = pv + vv
        new[..., 1, 0] = vp + vv
        new[..., 1, 1] = vv + self._noise(h, self.w_vel, 1e-5, fresh)
        return new_means, new

    def _innovation_cov(self, means, blocks, fresh=None):
        """S, the diagonal of the projected covariance, (N, 4)."""
        return blocks[..., 0, 0] + self._noise(means[:, 3], self.w_pos, 1e-1, fresh)

    def update(self, means, blocks, measurements, fresh=None):
        """Corrected (means, blocks) with (N, 4) cx, cy, a, h measurements.
        The results are not fresh."""
        s = self._innovation_cov(means, blocks, fresh)
        inv = 1.0 / np.sqrt(s)
        gain_p = blocks[..., 0, 0] * inv * inv          # K[i, i]
        gain_v = blocks[..., 1, 0] * inv * inv          # K[i+4, i]
        innovation = np.asarray(measurements, np.float64) - means[:, :4]
        new_means = np.empty_like(means)
        new_means[:, :4] = means[:, :4] + innovation * gain_p
        new_means[:, 4:] = means[:, 4:] + innovation * gain_v
        # P - multi_dot((K, S, K.T)), which is K (S K^T)
        s_gain_p, s_gain_v = s * gain_p, s * gain_v
        new = np.empty_like(blocks)
        new[..., 0, 0] = blocks[..., 0, 0] - gain_p * s_gain_p
        new[..., 0, 1] = blocks[..., 0, 1] - gain_p * s_gain_v
        new[..., 1, 0] = blocks[..., 1, 0] - gain_v * s_gain_p
        new[..., 1, 1] = blocks[..., 1, 1] - gain_v * s_gain_v
        return new_means, new

    def gating_distance(self, means, blocks, measurements, fresh=None):
        """(N, M) squared Mahalanobis distance of M (cx, cy, a, h) measurements
        to each of N tracks (the centre only where ``center_only``), as
        mmtrack's: Cholesky factor sqrt(S), a triangular solve, the sum of squares."""
        root = np.sqrt(self._innovation_cov(means, blocks, fresh))      # (N, 4)
        d = np.asarray(measurements, np.float64)[None, :, :] - means[:, None, :4]
        z = d * (1.0 / root)[:, None, :]
        k = 2 if self.center_only else 4
        total = z[..., 0] * z[..., 0]
        for i in range(1, k):
            total = total + z[..., i] * z[..., i]
        return total
