"""Every `make` target in the README's commands table (its "Quick start") exists
and starts: `make -n TARGET` succeeds, and each script or test path its recipes
would run is in the repository. The table is the list: a row added to the
README is checked here with no change to this file."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO

README = REPO / 'README.md'
# a path a recipe runs: scripts/x.sh, benchmarks/run.py, tests/test_x.py, tests
RUN_PATH = re.compile(r'(?<![\w./-])((?:scripts|benchmarks|tests|tools)/[\w./-]*\w)')


def section(text, title):
    match = re.search(rf'^## {re.escape(title)}\n(.*?)(?=^## |\Z)', text, re.M | re.S)
    assert match, f'README.md has no "## {title}" section'
    return match.group(1)


def table_targets():
    """The targets of the commands table, in order: its rows' first cells, `make TARGET`."""
    rows = [line for line in section(README.read_text(), 'Quick start').splitlines()
            if line.startswith('|')]
    targets = []
    for row in rows:
        first = row.strip('|').split('|')[0].strip()
        match = re.fullmatch(r'`make ([\w-]+)`', first)
        if match:
            targets.append(match.group(1))
    return targets


TARGETS = table_targets()


def dry_run(target):
    # -n prints the recipes of the target and its prerequisites without running them
    return subprocess.run(['make', '--no-print-directory', '-n', target], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, 'MAKEFLAGS': ''})


def test_the_table_lists_the_commands():
    assert len(TARGETS) >= 10, f'the commands table in "Quick start" lists only {TARGETS}'
    assert len(set(TARGETS)) == len(TARGETS), f'a target is listed twice: {TARGETS}'
    for needed in ('setup', 'demo', 'test', 'bench', 'docker-test'):
        assert needed in TARGETS, f'`make {needed}` is missing from the commands table'


@pytest.mark.skipif(shutil.which('make') is None, reason='make is not installed')
@pytest.mark.parametrize('target', TARGETS)
def test_target_exists_and_starts(target):
    result = dry_run(target)
    assert result.returncode == 0, f'`make -n {target}`: {result.stderr.strip()}'
    assert result.stdout.strip(), f'`make {target}` would run nothing'
    commands = '\n'.join(line.split(' #')[0] for line in result.stdout.splitlines())
    missing = sorted({path for path in RUN_PATH.findall(commands) if not (REPO / path).exists()})
    assert not missing, f'`make {target}` would run {missing}, which are not in the repository'
