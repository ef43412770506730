"""mmtrack-serve: serve MMTracking models with TorchServe.

The pinned stack (torch 2.13.0 CPU wheel first, mmcv-full built from source,
mmtrack without its unsatisfiable pins) cannot be expressed as plain
install_requires; `make setup` (scripts/setup_env.sh) installs it, then this
package with --no-deps. The lists below name what the code imports.
"""
from setuptools import find_packages, setup

setup(
    name='mmtrack-serve',
    version='0.1.0',
    description='Serve MMTracking models (MOT, SOT, VID, VIS) with TorchServe',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(include=['mmtrack_serve', 'mmtrack_serve.*']),
    install_requires=[
        'torch', 'mmcv-full==1.7.2', 'mmdet==2.28.2', 'mmtrack==0.14.0',
        'numpy', 'opencv-python-headless', 'av', 'pyyaml', 'requests', 'tqdm',
    ],
    extras_require={
        'serve': ['torchserve==0.12.0', 'torch-model-archiver==0.12.0', 'psutil'],
        'training': ['motmetrics', 'pycocotools', 'pandas', 'scipy'],
    },
    entry_points={
        'console_scripts': [
            'mmtrack-serve=mmtrack_serve.cli:main',
            'mmtrack2torchserve=mmtrack_serve.converters.mmtrack2torchserve:main',
        ],
    },
)
