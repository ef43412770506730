"""mmtrack2torchserve: self-contained archives, weights named by init_cfg."""
import functools
import http.server
import threading
import zipfile

import pytest

from mmtrack_serve.converters import mmtrack2torchserve
from mmtrack_serve.converters.mmtrack2torchserve import convert
from mmtrack_serve.errors import ConfigError, InputError
from tiny_models import make_tiny_deepsort_parts


@pytest.fixture(scope='module')
def deepsort_parts(tmp_path_factory):
    folder = tmp_path_factory.mktemp('deepsort')
    cfg, det, reid = make_tiny_deepsort_parts(folder)
    config = folder / 'deepsort.py'
    cfg.dump(str(config))
    return config, det, reid


def mar_files(mar):
    with zipfile.ZipFile(mar) as archive:
        return set(archive.namelist()), archive.read('config.py').decode()


def test_init_cfg_urls_are_refused_with_the_key_and_the_fix(deepsort_parts, tmp_path):
    config, _, _ = deepsort_parts
    with pytest.raises(ConfigError, match=r'model\.detector\.init_cfg names a URL .*--weights detector='):
        convert(str(config), None, output_folder=tmp_path, model_name='ds')
    assert not (tmp_path / 'ds.mar').exists()


def test_local_weights_are_bundled_and_the_config_points_at_them(deepsort_parts, tmp_path):
    config, det, reid = deepsort_parts
    mar = convert(str(config), None, output_folder=tmp_path, model_name='ds',
                  weights=[f'detector={det}', f'reid={reid}'])
    names, bundled = mar_files(mar)
    assert {'weights/detector.pth', 'weights/reid.pth', 'config.py'} <= names
    assert 'https://' not in bundled and "'weights/detector.pth'" in bundled


def test_unknown_weight_part_is_refused(deepsort_parts, tmp_path):
    config, det, reid = deepsort_parts
    with pytest.raises(InputError, match='no such init_cfg weight'):
        convert(str(config), None, output_folder=tmp_path, model_name='ds',
                weights=[f'detector={det}', f'reid={reid}', f'backbone={det}'])


def test_download_fetches_from_a_server_once(deepsort_parts, tmp_path, monkeypatch):
    config, det, reid = deepsort_parts
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(det.parent))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f'http://127.0.0.1:{httpd.server_address[1]}'
        text = config.read_text()
        url_config = tmp_path / 'url.py'
        import re
        urls = re.findall(r"https://[^'\"]+", text)
        text = text.replace(urls[0], f'{base}/detector.pth').replace(urls[1], f'{base}/reid.pth')
        url_config.write_text(text)
        monkeypatch.setattr(mmtrack2torchserve, 'DOWNLOAD_DIR', tmp_path / 'downloads')
        mar = convert(str(url_config), None, output_folder=tmp_path, model_name='ds', download=True)
    finally:
        httpd.shutdown()
    names, bundled = mar_files(mar)
    assert {'weights/detector.pth', 'weights/reid.pth'} <= names
    assert base not in bundled
    assert (tmp_path / 'downloads' / 'detector.pth').read_bytes() == det.read_bytes()


def test_checkpoint_drops_init_cfg_entries(tiny_files, tmp_path):
    config, ckpt = tiny_files['vis']
    names, bundled = mar_files(convert(str(config), str(ckpt), output_folder=tmp_path,
                                       model_name='vis'))
    assert 'Pretrained' not in bundled and not any(n.startswith('weights/') for n in names)


def test_handler_settings_are_written_and_bad_ones_refused(tiny_files, tmp_path):
    import yaml
    config, ckpt = tiny_files['mot']
    mar = convert(str(config), str(ckpt), output_folder=tmp_path, model_name='mot', workers=2,
                  detector_batch=8, torch_threads=1)
    with zipfile.ZipFile(mar) as archive:
        settings = yaml.safe_load(archive.read('model-config.yaml'))
    assert settings['minWorkers'] == 2
    assert settings['handler']['detector_batch'] == 8 and settings['handler']['torch_threads'] == 1
    assert settings['handler']['sequences']['state_store'] == 'default'
    assert settings['handler']['sequences']['max_state_mb'] == 64
    with pytest.raises(InputError, match='--detector-batch must be 0'):
        convert(str(config), str(ckpt), output_folder=tmp_path, model_name='bad', detector_batch=-1)
    with pytest.raises(InputError, match='--torch-threads must be 0'):
        convert(str(config), str(ckpt), output_folder=tmp_path, model_name='bad', torch_threads=-1)
    with pytest.raises(InputError, match='--state-store http://x: .* expected dir:PATH'):
        convert(str(config), str(ckpt), output_folder=tmp_path, model_name='bad',
                state_store='http://x')
    with pytest.raises(InputError, match='--max-state-mb must be 0'):
        convert(str(config), str(ckpt), output_folder=tmp_path, model_name='bad', max_state_mb=-1)
    assert not (tmp_path / 'bad.mar').exists()
