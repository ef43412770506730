"""`mmtrack-serve publish`: strip a checkpoint for release, sha256 prefix in its name."""
from ..publish import publish_checkpoint


def add_arguments(parser):
    parser.add_argument('in_file', help='training checkpoint (.pth)')
    parser.add_argument('out_prefix',
                        help='output name without the hash: writes OUT_PREFIX-HASH.pth')


def main(args):
    print(publish_checkpoint(args.in_file, args.out_prefix))
    return 0
