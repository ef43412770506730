#!/opt/venv/bin/python
"""Health check of the mmtrack-serve image (Docker HEALTHCHECK, or a
Kubernetes exec probe): exit 0 when TorchServe's /ping answers "Healthy".

With token authorization on, /ping needs the inference key: it is read from
key_file.json in TorchServe's working directory. Once that key has expired
(token_expiration_min) /ping refuses it; the server is then still taken as
alive, since it answered, but model health can no longer be seen from here.
"""
import datetime
import json
import os
import sys
import urllib.error
import urllib.request

KEY_FILE = os.path.join(os.environ.get('HOME', '/home/model-server'), 'key_file.json')
URL = f"http://127.0.0.1:{os.environ.get('HEALTHCHECK_PORT', '8080')}/ping"


def inference_key():
    """(key, expired) from key_file.json, or (None, False) when there is none."""
    try:
        with open(KEY_FILE) as f:
            entry = json.load(f)['inference']
    except (OSError, ValueError, KeyError):
        return None, False
    expiry = entry.get('expiration time', '')
    try:
        # e.g. 2026-11-24T12:40:58.023321977Z: seconds are enough
        when = datetime.datetime.strptime(expiry[:19], '%Y-%m-%dT%H:%M:%S').replace(
            tzinfo=datetime.timezone.utc)
        expired = when <= datetime.datetime.now(datetime.timezone.utc)
    except ValueError:
        expired = False
    return entry.get('key'), expired


def main():
    key, expired = inference_key()
    headers = {'Authorization': f'Bearer {key}'} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(URL, headers=headers), timeout=10) as r:
            status = json.load(r).get('status')
    except urllib.error.HTTPError as e:
        if e.code == 400 and expired:
            print('alive (the inference key in key_file.json has expired; model health not checked)')
            return 0
        print(f'/ping: HTTP {e.code}: {e.read()[:200]!r}')
        return 1
    except (OSError, ValueError) as e:
        print(f'/ping: {e}')
        return 1
    print(f'/ping: {status}')
    return 0 if status == 'Healthy' else 1


if __name__ == '__main__':
    sys.exit(main())
