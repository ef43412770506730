"""Starts and stops a local TorchServe on a model store.

TorchServe's defaults do not fit video: requests and responses are capped at
6.5 MB, token authorization is on, the model API is off, and metrics are off.
``write_config`` overrides each of these (documented in the README). Token
authorization is switched off only when every address is on loopback.

Each server gets its own run directory (config, logs, and TorchServe's pid
file, which TorchServe otherwise keeps in the shared temp dir, allowing only
one server per machine).
"""
import ipaddress
import json
import re
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import MMTrackServeError

DEFAULT_LIMIT_BYTES = 1 << 30          # 1 GiB request and response
# A whole video is one request: TorchServe's default 120 s is too short for long
# ones. The server's default, and each model's (the converter's model-config.yaml).
DEFAULT_RESPONSE_TIMEOUT_S = 3600
# TorchServe's workers listen on unix sockets TMPDIR/.ts.sock.PORT (TMPDIR is
# the run dir's tmp/); Linux cuts such a path at 107 bytes and the worker dies.
UNIX_SOCKET_PATH_MAX = 107


def ports_free(base, host='127.0.0.1'):
    """True when the five ports from ``base`` (inference, management, metrics,
    gRPC inference and management) are free."""
    try:
        for port in range(base, base + 5):
            with socket.socket() as s:
                s.bind((host, port))
        return True
    except OSError:
        return False


def free_port_base(candidates):
    """The first candidate base whose three ports are free."""
    for base in candidates:
        if ports_free(base):
            return base
    raise MMTrackServeError('no five consecutive free ports for TorchServe')


def default_run_dir(port_base):
    root = Path(os.environ.get('XDG_STATE_HOME', Path.home() / '.local' / 'state'))
    return root / 'mmtrack-serve' / f'server-{port_base}'


def is_loopback(host):
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def write_config(run_dir, model_store, models, port_base=8080, host='127.0.0.1', workers=1,
                 limit_bytes=DEFAULT_LIMIT_BYTES, token_auth=None):
    """config.properties for TorchServe; ``models`` is a list of 'NAME=FILE.mar' or 'all'."""
    token_auth = not is_loopback(host) if token_auth is None else token_auth
    lines = {
        'inference_address': f'http://{host}:{port_base}',
        # management and metrics stay on loopback unless asked otherwise
        'management_address': f'http://127.0.0.1:{port_base + 1}',
        'metrics_address': f'http://127.0.0.1:{port_base + 2}',
        # TorchServe also opens gRPC on fixed ports 7070/7071: a second server
        # on the machine would die at start on them, so they follow the base.
        'grpc_inference_address': '127.0.0.1',
        'grpc_inference_port': port_base + 3,
        'grpc_management_address': '127.0.0.1',
        'grpc_management_port': port_base + 4,
        'model_store': str(Path(model_store).resolve()),
        'load_models': ','.join(models) if models else 'all',
        'max_request_size': limit_bytes,
        'max_response_size': limit_bytes,
        'default_response_timeout': DEFAULT_RESPONSE_TIMEOUT_S,
        'default_workers_per_model': workers,
        'metrics_mode': 'prometheus',
        'model_metrics_auto_detect': 'true',
        'enable_model_api': 'true',
        'disable_token_authorization': str(not token_auth).lower(),
        'install_py_dep_per_model': 'false',
        'default_startup_timeout': 600,
    }
    path = Path(run_dir) / 'config.properties'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(f'{k}={v}\n' for k, v in lines.items()))
    return path


class Server:
    """A TorchServe process bound to ``run_dir``."""

    def __init__(self, run_dir, port_base=8080, host='127.0.0.1', env=None):
        """``env``: variables set for TorchServe and its workers beside this
        process's own (e.g. a dead proxy in tests, so nothing is downloaded)."""
        self.run_dir = Path(run_dir)
        self.extra_env = dict(env or {})
        self.port_base = port_base
        self.host = '127.0.0.1' if host in ('0.0.0.0', '::') else host
        self.inference_url = f'http://{self.host}:{port_base}'
        self.management_url = f'http://127.0.0.1:{port_base + 1}'
        self.metrics_url = f'http://127.0.0.1:{port_base + 2}'
        self.log_dir = self.run_dir / 'logs'
        self.state_dir = self.run_dir / 'state'

    def _env(self):
        env = dict(os.environ, **self.extra_env)
        tmp = self.run_dir / 'tmp'
        tmp.mkdir(parents=True, exist_ok=True)
        env.update(TMPDIR=str(tmp), LOG_LOCATION=str(self.log_dir),
                   METRICS_LOCATION=str(self.log_dir), TEMP=str(tmp))
        from ..handlers.state_store import STATE_DIR_ENV
        # streams outlive a worker: a model's "default" state store is in the run dir
        env.setdefault(STATE_DIR_ENV, str(self.state_dir))
        # workers must find this interpreter's packages
        env['PATH'] = f'{Path(sys.executable).parent}{os.pathsep}{env.get("PATH", "")}'
        return env

    def _torchserve(self):
        exe = Path(sys.executable).parent / 'torchserve'
        return str(exe) if exe.exists() else shutil.which('torchserve') or 'torchserve'

    def start(self, model_store, foreground=False):
        self._check_socket_path()
        config = self.run_dir / 'config.properties'
        cmd = [self._torchserve(), '--start', '--ts-config', str(config),
               '--model-store', str(Path(model_store).resolve()), '--ncs']
        if foreground:
            cmd.append('--foreground')
            return subprocess.call(cmd, env=self._env())
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / 'torchserve.out', 'w') as out:
            proc = subprocess.run(cmd, env=self._env(), stdout=out, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise MMTrackServeError(f'torchserve did not start (exit {proc.returncode}); '
                                    f'see {self.run_dir / "torchserve.out"}')
        return 0

    def _check_socket_path(self):
        socket = self.run_dir.resolve() / 'tmp' / '.ts.sock.65535'
        if len(os.fsencode(str(socket))) > UNIX_SOCKET_PATH_MAX:
            raise MMTrackServeError(
                f'the run dir {self.run_dir} is too long a path: TorchServe\'s worker sockets '
                f'({socket.parent}/.ts.sock.PORT) must stay within {UNIX_SOCKET_PATH_MAX} bytes; '
                'choose a shorter --run-dir (or XDG_STATE_HOME)')

    def stop(self, timeout=60):
        subprocess.run([self._torchserve(), '--stop'], env=self._env(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline and self.ping():
            time.sleep(0.5)

    def ping(self):
        try:
            with urllib.request.urlopen(f'{self.inference_url}/ping', timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def models(self):
        with urllib.request.urlopen(f'{self.management_url}/models', timeout=5) as r:
            return [m['modelName'] for m in json.load(r)['models']]

    def worker_states(self, name):
        with urllib.request.urlopen(f'{self.management_url}/models/{name}', timeout=5) as r:
            return [w['status'] for entry in json.load(r) for w in entry.get('workers', [])]

    def worker_error(self, deaths=3):
        """The last error of a worker that died ``deaths`` times, else None."""
        log = self.log_dir / 'model_log.log'
        if not log.is_file():
            return None
        text = log.read_text(errors='replace')
        if text.count('Backend worker process died') < deaths:
            return None
        errors = re.findall(r'MODEL_LOG - ((?:\w+\.)*\w*(?:Error|Exception)\b.*)', text)
        return errors[-1] if errors else 'the worker keeps dying'

    def wait_ready(self, names=None, timeout=600):
        """Waits until each model has a READY worker; returns their names."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            error = self.worker_error()
            if error:
                raise MMTrackServeError(f'the model worker fails to start: {error} '
                                        f'(log: {self.log_dir / "model_log.log"})')
            try:
                wanted = names or self.models()
                if wanted and all('READY' in self.worker_states(n) for n in wanted):
                    return wanted
            except (urllib.error.URLError, OSError, ValueError, KeyError):
                pass
            time.sleep(1)
        raise MMTrackServeError(f'models not READY after {timeout} s; see {self.log_dir}')
