"""The seed's entry point; the same as the `mmtrack2torchserve` command."""
import sys

from mmtrack_serve.converters.mmtrack2torchserve import main

if __name__ == '__main__':
    sys.exit(main())
