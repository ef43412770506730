"""Frame-by-frame comparison of two results dicts (served vs local)."""
from dataclasses import dataclass, field
from typing import List

BOX_TOLERANCE_PX = 1e-3
SCORE_TOLERANCE = 1e-4


@dataclass
class FrameDiff:
    frame_id: int
    served_objects: int
    local_objects: int
    max_box_diff: float = 0.0
    max_score_diff: float = 0.0
    id_mismatches: int = 0


@dataclass
class ParityReport:
    frames: List[FrameDiff] = field(default_factory=list)
    frame_count_mismatch: bool = False

    @property
    def max_box_diff(self):
        return max((f.max_box_diff for f in self.frames), default=0.0)

    @property
    def max_score_diff(self):
        return max((f.max_score_diff for f in self.frames), default=0.0)

    @property
    def id_mismatches(self):
        return sum(f.id_mismatches for f in self.frames)

    @property
    def count_mismatches(self):
        return sum(f.served_objects != f.local_objects for f in self.frames)

    @property
    def ok(self):
        return (not self.frame_count_mismatch and self.count_mismatches == 0 and self.id_mismatches == 0
                and self.max_box_diff <= BOX_TOLERANCE_PX and self.max_score_diff <= SCORE_TOLERANCE)

    def table(self, max_rows=20):
        head = f'{"frame":>6} {"served":>7} {"local":>6} {"max |dbox| px":>14} {"max |dscore|":>13} {"id mism.":>9}'
        rows = [head, '-' * len(head)]
        shown = self.frames if len(self.frames) <= max_rows else \
            self.frames[:max_rows // 2] + [None] + self.frames[-max_rows // 2:]
        for f in shown:
            rows.append('   ...' if f is None else
                        f'{f.frame_id:>6} {f.served_objects:>7} {f.local_objects:>6} {f.max_box_diff:>14.2e} '
                        f'{f.max_score_diff:>13.2e} {f.id_mismatches:>9}')
        rows.append('-' * len(head))
        rows.append(f'{"all":>6} {sum(f.served_objects for f in self.frames):>7} '
                    f'{sum(f.local_objects for f in self.frames):>6} {self.max_box_diff:>14.2e} '
                    f'{self.max_score_diff:>13.2e} {self.id_mismatches:>9}')
        return '\n'.join(rows)


def compare(served, local):
    """Objects are compared in order: both sides run the same core code, so
    equal models give equal order."""
    report = ParityReport(frame_count_mismatch=len(served['frames']) != len(local['frames']))
    for s_frame, l_frame in zip(served['frames'], local['frames']):
        s_objs, l_objs = s_frame['objects'], l_frame['objects']
        diff = FrameDiff(l_frame['frame_id'], len(s_objs), len(l_objs))
        for s, l in zip(s_objs, l_objs):
            diff.max_box_diff = max(diff.max_box_diff, *(abs(a - b) for a, b in zip(s['bbox'], l['bbox'])))
            diff.max_score_diff = max(diff.max_score_diff, abs(s['score'] - l['score']))
            diff.id_mismatches += (s['track_id'] != l['track_id']) or (s['label'] != l['label'])
        report.frames.append(diff)
    return report
