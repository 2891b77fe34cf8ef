"""Grad-CAM overlays of a trained classifier, one PNG per image plus a grid.

Usage::

    python tools/visualization/cam_grid.py CONFIG CHECKPOINT IMAGE [IMAGE ...] \
        --out-dir cams [--grid cams.png] [--cam-layer backbone.layers.7]

Reuses mmdsp's own Grad-CAM (:class:`mmdsp.apis.GradCAM`, through
:func:`mmdsp.apis.predict`, the engine of ``tools/predict.py``): the map of
the predicted class at the backbone's last stage unless ``--cam-layer``
names another module. Images go through the config's test pipeline (so the
LAB k-means background removal is applied), and the overlay is drawn on the
image as loaded. It needs no third-party CAM package; for the other CAM
methods (GradCAM++, XGradCAM, EigenCAM, ...) on one image, use
``tools/visualization/vis_cam.py``, MMPretrain's tool (``pip install
mmdsp[cam]``).
"""
import argparse
import os.path as osp


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='model config')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('images', nargs='+',
                        help='image files, folders or glob patterns')
    parser.add_argument('--out-dir', required=True,
                        help='folder for the overlay PNGs')
    parser.add_argument('--grid', help='also write a figure of input | '
                        'overlay pairs with the predictions to this PNG')
    parser.add_argument('--cam-layer', help='dotted module name of the '
                        'target layer (default: backbone output)')
    parser.add_argument('--device', help='cpu or cuda (default: auto)')
    args = parser.parse_args(argv)

    import cv2

    from mmdsp.apis import predict
    rows = predict(args.config, args.checkpoint, args.images,
                   device=args.device, cam_dir=args.out_dir,
                   cam_layer=args.cam_layer, progress=False)
    failed = [r for r in rows if r['error']]
    for r in failed:
        print(f'skipped {r["path"]}: {r["error"]}')
    done = [r for r in rows if r['cam_path']]
    if not done:
        raise SystemExit('no Grad-CAM written: every image failed')
    for r in done:
        print(f'{r["path"]}: {r["pred_class"]} '
              f'({100 * float(r["scores"].max()):.1f}%) -> {r["cam_path"]}')

    if args.grid:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(len(done), 2,
                                 figsize=(6.4, 3.2 * len(done)),
                                 squeeze=False)
        for (ax_in, ax_cam), r in zip(axes, done):
            image = cv2.imread(r['path'])
            overlay = cv2.imread(r['cam_path'])
            ax_in.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            ax_in.set_title(osp.basename(r['path']), fontsize=9)
            ax_cam.imshow(cv2.cvtColor(overlay, cv2.COLOR_BGR2RGB))
            ax_cam.set_title(f'Grad-CAM: {r["pred_class"]}', fontsize=9)
            ax_in.axis('off')
            ax_cam.axis('off')
        fig.tight_layout()
        fig.savefig(args.grid, dpi=150)
        plt.close(fig)
        print(f'wrote {args.grid}')
    return rows


if __name__ == '__main__':
    main()
