"""`make demo`: the whole served path on the demo model.

The demo model (ByteTrack on a tiny YOLOX trained on the synthetic world) is
published in ~/.cache/mmtrack-serve/demo-model/; when it is missing it is
trained first (about 15 minutes on 2 idle cores) and kept there. Then: mmtrack2torchserve, a local
TorchServe, every held-out synthetic video posted as curl posts it (and
../shared/data/videos/demo.mp4 when present), the served tracks scored against
the ground truth (MOTA/IDF1 per video and overall), and the server stopped.
"""
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / 'demo_output'
CACHE = Path(os.environ.get('MMTRACK_SERVE_CACHE', Path.home() / '.cache' / 'mmtrack-serve')) / 'demo'
DEMO_CLIP = REPO.parent / 'shared' / 'data' / 'videos' / 'demo.mp4'
MODEL_NAME = 'demo'


def demo_model():
    """(config, checkpoint) of the published demo model, training it if absent."""
    from mmtrack_serve.training import demo_model as dm
    published = sorted(dm.DEFAULT_OUT.parent.glob(f'{dm.DEFAULT_OUT.name}-*.pth'))
    config = Path(f'{dm.DEFAULT_OUT}.py')
    if published and config.is_file():
        return config, published[-1]
    print(f'no published demo model in {dm.DEFAULT_OUT.parent}: training it (about 15 minutes)')
    args = type('Args', (), dict(cache_dir=str(CACHE), out=str(dm.DEFAULT_OUT), seed=0,
                                 score_thr=0.0, cfg_options=None))
    dm.main(args)
    return demo_model()


def main():
    from mmtrack_serve.cli import quiet_warnings
    quiet_warnings()
    from mmtrack_serve.client import predict
    from mmtrack_serve.converters.mmtrack2torchserve import convert
    from mmtrack_serve.launcher import Server, free_port_base, write_config
    from mmtrack_serve.training import demo_model as dm
    from mmtrack_serve.training.mot_metrics import evaluate_mot, find_gt_files, format_table

    config, checkpoint = demo_model()
    print(f'demo model: {checkpoint.relative_to(REPO)} ({checkpoint.stat().st_size / 2**20:.1f} MiB)')
    heldout = CACHE / 'heldout'
    dm.ensure_world(heldout, dm.HELDOUT_WORLD)
    OUT.mkdir(exist_ok=True)
    store = OUT / 'model_store'
    convert(str(config), str(checkpoint), store, MODEL_NAME, force=True)

    base = free_port_base([int(os.environ.get('DEMO_PORT', 8080))] + list(range(18080, 19000, 10)))
    server = Server(OUT / 'server', base)
    write_config(server.run_dir, store, [f'{MODEL_NAME}={MODEL_NAME}.mar'], base)
    server.start(store)
    try:
        server.wait_ready([MODEL_NAME], timeout=300)
        print(f'serving {server.inference_url}/predictions/{MODEL_NAME} (logs: {server.log_dir})')
        gt_files = find_gt_files(heldout / 'mot')
        results, frames, seconds = {}, 0, 0.0
        for name in gt_files:
            video = heldout / 'videos' / f'{name}.mp4'
            start = time.perf_counter()
            served = predict(server.inference_url, MODEL_NAME, video, 'json', {'score_thr': 0})
            seconds += time.perf_counter() - start
            frames += len(served['frames'])
            results[name] = dm.result_rows(served)
            print(f'  {name}: {len(served["frames"])} frames, '
                  f'{len({o["track_id"] for f in served["frames"] for o in f["objects"]})} tracks')
        first = heldout / 'videos' / f'{next(iter(gt_files))}.mp4'
        (OUT / 'result.mp4').write_bytes(predict(server.inference_url, MODEL_NAME, first, 'mp4',
                                                 {'score_thr': 0.3}))
        (OUT / 'result.json').write_text(json.dumps(
            predict(server.inference_url, MODEL_NAME, first, 'json', {'score_thr': 0.3})))
        if DEMO_CLIP.is_file():
            (OUT / 'demo_clip_result.mp4').write_bytes(
                predict(server.inference_url, MODEL_NAME, DEMO_CLIP, 'mp4'))
    finally:
        server.stop()
    import numpy as np
    metrics = evaluate_mot(gt_files, {k: np.array(v, dtype=float).reshape(-1, 7)
                                      for k, v in results.items()})
    print(format_table(metrics))
    overall = metrics['OVERALL']
    worst = min(v['MOTA'] for k, v in metrics.items() if k != 'OVERALL')
    print(f'served MOTA {overall["MOTA"]:.3f} (worst video {worst:.3f}), IDF1 {overall["IDF1"]:.3f} '
          f'over {len(gt_files)} held-out videos; {frames / seconds:.1f} frames/s through TorchServe '
          '(HTTP, decode, track, JSON)')
    print(f'outputs: {OUT / "result.mp4"} (H.264, {first.name}), {OUT / "result.json"}'
          + (f', {OUT / "demo_clip_result.mp4"}' if DEMO_CLIP.is_file() else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
