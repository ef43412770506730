"""`mmtrack-serve mot2coco`: a MOTChallenge folder to CocoVID json (MMTracking's converter)."""
import logging

from ..mot2coco import convert_mot_to_coco


def add_arguments(parser):
    parser.add_argument('-i', '--input', required=True,
                        help='MOT root holding train/ and/or test/ (MOT15/16/17/20 layout)')
    parser.add_argument('-o', '--output', required=True, help='folder for the json files')
    parser.add_argument('--split-train', action='store_true',
                        help='also write half-train and half-val from train')
    parser.add_argument('--convert-det', action='store_true',
                        help='also write the public detections (det/det.txt) as a pickle')


def main(args):
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    convert_mot_to_coco(args.input, args.output, split_train=args.split_train,
                        convert_det=args.convert_det)
    return 0
