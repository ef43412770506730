import hashlib
import re
from collections import OrderedDict

import pytest
import torch

from mmtrack_serve import cli
from mmtrack_serve.errors import InputError
from mmtrack_serve.training.publish import publish_checkpoint


def _checkpoint():
    weights = OrderedDict([('backbone.conv.weight', torch.randn(4, 3, 3, 3)),
                           ('head.fc.bias', torch.randn(4))])
    ema = OrderedDict((f'ema_{k.replace(".", "_")}', v.clone()) for k, v in weights.items())
    return dict(meta=dict(epoch=3, CLASSES=('pedestrian',)),
                state_dict=OrderedDict(list(weights.items()) + list(ema.items())),
                optimizer=dict(state={0: dict(momentum_buffer=torch.ones(4))}))


def test_publish_strips_and_hashes(tmp_path):
    original = _checkpoint()
    torch.save(original, tmp_path / 'epoch_3.pth')
    out = publish_checkpoint(tmp_path / 'epoch_3.pth', tmp_path / 'release' / 'bytetrack')

    match = re.fullmatch(r'bytetrack-([0-9a-f]{8})\.pth', out.name)
    assert match and out.parent == tmp_path / 'release'
    assert hashlib.sha256(out.read_bytes()).hexdigest()[:8] == match.group(1)
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temp left

    published = torch.load(out, map_location='cpu', weights_only=False)
    assert 'optimizer' not in published
    assert published['meta'] == original['meta']
    assert list(published['state_dict']) == ['backbone.conv.weight', 'head.fc.bias']
    for key, value in published['state_dict'].items():
        assert value.device.type == 'cpu'
        assert torch.equal(value, original['state_dict'][key])


def test_publish_is_reproducible_and_strips_pth_suffix(tmp_path):
    torch.save(_checkpoint(), tmp_path / 'in.pth')
    first = publish_checkpoint(tmp_path / 'in.pth', tmp_path / 'a.pth')
    second = publish_checkpoint(tmp_path / 'in.pth', tmp_path / 'b')
    assert first.name.startswith('a-') and not first.name.startswith('a.pth')
    assert first.name[2:] == second.name[2:]  # same content, same hash


def test_bare_state_dict_loses_ema_keys(tmp_path):
    torch.save(OrderedDict(w=torch.ones(2), ema_w=torch.ones(2)), tmp_path / 'in.pth')
    out = publish_checkpoint(tmp_path / 'in.pth', tmp_path / 'out')
    assert list(torch.load(out, weights_only=True)) == ['w']


def test_cli_prints_the_path(tmp_path, capsys):
    torch.save(_checkpoint(), tmp_path / 'in.pth')
    assert cli.main(['publish', str(tmp_path / 'in.pth'), str(tmp_path / 'model')]) == 0
    printed = capsys.readouterr().out.strip()
    assert re.fullmatch(re.escape(str(tmp_path / 'model-')) + r'[0-9a-f]{8}\.pth', printed)


def test_bad_inputs(tmp_path, capsys):
    assert cli.main(['publish', str(tmp_path / 'missing.pth'), str(tmp_path / 'x')]) == 1
    assert 'checkpoint not found' in capsys.readouterr().err
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(InputError, match='cannot load'):
        publish_checkpoint(tmp_path / 'junk.pth', tmp_path / 'x')
    torch.save([1, 2], tmp_path / 'list.pth')
    with pytest.raises(InputError, match='not a checkpoint dict'):
        publish_checkpoint(tmp_path / 'list.pth', tmp_path / 'x')
