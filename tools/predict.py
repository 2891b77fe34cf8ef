"""Classify image files with a trained mmdsp / MMPretrain classifier.

    python tools/predict.py CONFIG CHECKPOINT INPUT... --out results.csv \
        [--cam-dir DIR] [--batch-size N] [--device cpu] [--raw-probs] \
        [--no-flags]

INPUT may be files, folders (searched recursively for images) or glob
patterns (quote them). Writes one CSV row per image; exit code 1 if any image
failed (its row holds the error), 0 otherwise. A checkpoint calibrated by
tools/analysis_tools/fit_temperature.py gives calibrated probabilities and a
``flag_reason`` column (docs/inference.md).
"""
import argparse
import sys

from mmdsp.apis import predict


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Predict the class of image files (CSV output).')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('inputs',
                        nargs='+',
                        help='image files, folders or glob patterns')
    parser.add_argument('--out', required=True, help='CSV file to write')
    parser.add_argument('--cam-dir',
                        help='also write a Grad-CAM overlay PNG per image '
                        'into this folder')
    parser.add_argument('--cam-layer',
                        help='Grad-CAM target layer, e.g. backbone.layers.7 '
                        '(default: the backbone\'s last stage)')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--device',
                        help='e.g. cpu or cuda:0 (default: cuda if present)')
    parser.add_argument('--no-progress',
                        action='store_true',
                        help='hide the progress bar')
    parser.add_argument('--raw-probs',
                        action='store_true',
                        help='ignore the checkpoint\'s temperature '
                        '(uncalibrated probabilities)')
    parser.add_argument('--no-flags',
                        action='store_true',
                        help='leave out the flag_reason / score columns of '
                        'a checkpoint with fitted thresholds')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = predict(args.config,
                   args.checkpoint,
                   args.inputs,
                   out=args.out,
                   batch_size=args.batch_size,
                   device=args.device,
                   cam_dir=args.cam_dir,
                   cam_layer=args.cam_layer,
                   progress=not args.no_progress,
                   calibrated=not args.raw_probs,
                   flags=False if args.no_flags else None)
    failed = [r for r in rows if r['error']]
    flagged = [r for r in rows if r['flag_reason']]
    print(f'{len(rows) - len(failed)}/{len(rows)} images classified, '
          f'{len(flagged)} flagged not to be judged by the model; results '
          f'in {args.out}')
    for r in failed:
        print(f'failed: {r["path"]}: {r["error"]}', file=sys.stderr)
    return 1 if failed or not rows else 0


if __name__ == '__main__':
    sys.exit(main())
