"""`mmtrack-serve synth`: write the synthetic tracking world (videos, CocoVID, MOT gt)."""
import os

from ..synthetic import SHAPES, SynthConfig
from ..synthetic_dataset import write_synthetic_dataset


def add_arguments(parser):
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--videos', type=int, required=True, help='number of videos')
    parser.add_argument('--frames', type=int, required=True, help='frames per video')
    parser.add_argument('--seed', type=int, default=0,
                        help='world seed: the same seed writes the same videos (default: 0)')
    parser.add_argument('--width', type=int, default=320, help='frame width, even (default: 320)')
    parser.add_argument('--height', type=int, default=240,
                        help='frame height, even (default: 240)')
    parser.add_argument('--fps', type=int, default=10, help='frame rate of the mp4s (default: 10)')
    parser.add_argument('--shapes', default=','.join(SHAPES),
                        help=f'comma-separated shapes to use (default: {",".join(SHAPES)})')
    parser.add_argument('--one-class', action='store_true',
                        help="label every shape as one category, 'object'")
    parser.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1),
                        help='processes writing videos in parallel (default: CPUs, at most 4)')


def main(args):
    config = SynthConfig(width=args.width, height=args.height, frames=args.frames, fps=args.fps,
                         shapes=tuple(s.strip() for s in args.shapes.split(',') if s.strip()),
                         one_class=args.one_class)
    annotations = write_synthetic_dataset(args.out, args.videos, seed=args.seed, config=config,
                                          workers=max(1, args.workers))
    print(f'wrote {args.videos} videos of {args.frames} frames to {args.out} '
          f'(CocoVID: {annotations}, MOT gt: {os.path.join(args.out, "mot")})')
    return 0
