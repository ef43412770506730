"""`make demo`: the whole served path on the demo model, in under a minute.

The demo model (ByteTrack on a tiny YOLOX trained on the synthetic world) is
committed in demo/ (`make demo-model` retrains it). Steps: mmtrack2torchserve,
a local TorchServe, the held-out synthetic videos posted as curl posts them
(with default options: what a user gets), the served tracks scored against the
ground truth (MOTA/IDF1 per video and overall), the annotated H.264 mp4 of one
of them (and of ../shared/data/videos/demo.mp4 when present) saved, the
server stopped.

    python scripts/demo.py [--videos N] [--output-dir DIR] [--port 8080]
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get('MMTRACK_SERVE_CACHE', Path.home() / '.cache' / 'mmtrack-serve')) / 'demo'
DEMO_CLIP = REPO.parent / 'shared' / 'data' / 'videos' / 'demo.mp4'
MODEL_NAME = 'demo'


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--videos', type=int, default=None,
                   help='held-out videos to post (default: all 10)')
    p.add_argument('--output-dir', default=str(REPO / 'demo_output'),
                   help='model store, server logs and results (default: demo_output)')
    p.add_argument('--port', type=int, default=int(os.environ.get('DEMO_PORT', 8080)),
                   help='inference port, if free (default 8080; else the next free base)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmtrack_serve.quiet import quiet_warnings
    quiet_warnings()
    import numpy as np

    from mmtrack_serve.serving.client import predict
    from mmtrack_serve.converters.mmtrack2torchserve import convert
    from mmtrack_serve.errors import MMTrackServeError
    from mmtrack_serve.serving.launcher import Server, free_port_base, write_config
    from mmtrack_serve.training import demo_model as dm
    from mmtrack_serve.training.mot_metrics import evaluate_mot, find_gt_files, format_table

    try:
        config, checkpoint = dm.published_model()
    except MMTrackServeError as e:
        print(f'demo: error: {e}', file=sys.stderr)
        return 1
    print(f'demo model: {checkpoint.relative_to(REPO)} ({checkpoint.stat().st_size / 2**20:.1f} MiB)')
    heldout = CACHE / f'heldout-{dm.HELDOUT_WORLD.folder_name}'
    dm.ensure_world(heldout, dm.HELDOUT_WORLD)
    gt_files = find_gt_files(heldout / 'mot')
    names = list(gt_files)[:args.videos] if args.videos else list(gt_files)
    gt_files = {name: gt_files[name] for name in names}
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = out / 'model_store'
    convert(str(config), str(checkpoint), output_folder=store, model_name=MODEL_NAME, force=True)

    base = free_port_base([args.port] + list(range(18080, 19000, 10)))
    server = Server(out / 'server', base)
    write_config(server.run_dir, store, [f'{MODEL_NAME}={MODEL_NAME}.mar'], base)
    server.start(store)
    try:
        server.wait_ready([MODEL_NAME], timeout=300)
        print(f'serving {server.inference_url}/predictions/{MODEL_NAME} (logs: {server.log_dir})')
        results, frames, seconds = {}, 0, 0.0
        for name in names:
            video = heldout / 'videos' / f'{name}.mp4'
            start = time.perf_counter()
            served = predict(server.inference_url, MODEL_NAME, video, 'json')
            seconds += time.perf_counter() - start
            frames += len(served['frames'])
            results[name] = dm.result_rows(served)
            print(f'  {name}: {len(served["frames"])} frames, '
                  f'{len({o["track_id"] for f in served["frames"] for o in f["objects"]})} tracks')
        first = heldout / 'videos' / f'{names[0]}.mp4'
        (out / 'result.mp4').write_bytes(predict(server.inference_url, MODEL_NAME, first, 'mp4'))
        (out / 'result.json').write_text(json.dumps(predict(server.inference_url, MODEL_NAME, first, 'json')))
        if DEMO_CLIP.is_file():
            (out / 'demo_clip_result.mp4').write_bytes(
                predict(server.inference_url, MODEL_NAME, DEMO_CLIP, 'mp4'))
    finally:
        server.stop()
    metrics = evaluate_mot(gt_files, {k: np.array(v, dtype=float).reshape(-1, 7)
                                      for k, v in results.items()})
    print(format_table(metrics))
    overall = metrics['OVERALL']
    worst = min(v['MOTA'] for k, v in metrics.items() if k != 'OVERALL')
    print(f'served MOTA {overall["MOTA"]:.3f} (worst video {worst:.3f}), IDF1 {overall["IDF1"]:.3f} '
          f'over {len(gt_files)} held-out videos; {frames / seconds:.1f} frames/s through TorchServe '
          '(HTTP, decode, track, JSON)')
    print(f'outputs: {out / "result.mp4"} (H.264, {first.name}), {out / "result.json"}'
          + (f', {out / "demo_clip_result.mp4"}' if DEMO_CLIP.is_file() else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
