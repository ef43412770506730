"""Makes PyPI's torchvision importable next to a CPU-only torch.

torchvision 0.28.0 on PyPI is a CUDA build. Next to the CPU torch its C
extension does not load, so its ops (nms, roi_align...) never register, and
``_meta_registrations`` then dies at import on an unconditional
``register_fake("torchvision::nms")``. mmcv 1.x imports torchvision, so nothing
would import. The patch makes those two registrations conditional on the
extension being loaded, which is what the rest of the file already does.
mmtrack-serve never calls torchvision.ops. Idempotent; a no-op when the
extension loads (CUDA torch), since the condition is then true.
"""
import importlib.util
import pathlib
import sys

MARK = "# mmtrack-serve: registrations need the C extension"
OLD = '@torch.library.register_fake("torchvision::'
NEW = '@_register_fake_if_ops("torchvision::'
HELPER = f'''
{MARK}
def _register_fake_if_ops(name):
    if torchvision.extension._has_ops():
        return torch.library.register_fake(name)
    return lambda fn: fn

'''


def main():
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        sys.exit("patch_torchvision: torchvision is not installed")
    path = pathlib.Path(spec.origin).parent / "_meta_registrations.py"
    text = path.read_text()
    if MARK in text:
        print(f"patch_torchvision: {path} already patched")
        return
    anchor = "import torchvision.extension  # noqa: F401\n"
    if anchor not in text or OLD not in text:
        sys.exit(f"patch_torchvision: {path} does not look like torchvision 0.28; not patched")
    text = text.replace(anchor, anchor + HELPER, 1).replace(OLD, NEW)
    path.write_text(text)
    print(f"patch_torchvision: patched {path}")


if __name__ == "__main__":
    main()
