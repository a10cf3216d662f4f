"""Scale of the VGG content loss for converted VGG19 files, on real photos: relu5_4 magnitude and the paper's loss.

The SRGAN paper multiplies VGG feature maps by 1/12.75 (``TrainConfig.vgg_rescale``), on the
original network fed Caffe-style inputs (0..255). A VGG19 file whose features live on another
scale (torchvision's: inputs divided by their std, a retrained network) changes the content
loss's weight against the 1e-3 adversarial term by the square of the feature ratio printed here.

For each file and each image (a central CROP x CROP crop): the RMS of relu5_4 of the HR crop,
and the content loss the trainer computes, ``mean((phi(SR) - phi(HR))^2) / 12.75^2``, with SR
the MATLAB-bicubic x4 round trip of the crop; the pixel MSE of that SR (on [-1, 1], the
SRResNet loss) for comparison. Medians over the images, then each file's ratio to the first.

    python experiments/vgg_feature_scale.py original.safetensors [torchvision.safetensors] \\
        --images DATA/Set5/HR DATA/Set14/HR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import this_checkout  # noqa: F401  (first: this checkout's srgan_mlx, its BLAS before mlx)
import mlx.core as mx
import numpy as np

from srgan_mlx.files.image_io import load_image
from srgan_mlx.files.model_io import load_vgg
from srgan_mlx.quality.evaluate import list_images
from srgan_mlx.quality.imresize import imresize
from srgan_mlx.training.losses import VGG_RESCALE, PerceptualLoss, mse


def crops(folders: list[str], size: int) -> list[tuple[str, np.ndarray]]:
    """``(name, central size x size RGB uint8 crop)`` of every image at least that large."""
    out = []
    for folder in folders:
        for path in list_images(Path(folder)):
            image = load_image(path)[0]
            top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
            if min(top, left) >= 0:
                out.append((path.stem, image[top : top + size, left : left + size]))
    return out


def measure(vgg_file: str, images: list[tuple[str, np.ndarray]]) -> dict[str, float]:
    """Medians over ``images`` of relu5_4 RMS, the content loss of the bicubic x4 round trip, and its pixel MSE."""
    vgg = load_vgg(vgg_file)
    loss = PerceptualLoss(vgg, "relu5_4", VGG_RESCALE)
    rms, content, pixel = [], [], []
    for _, hr in images:
        sr = imresize(imresize(hr, 0.25), 4.0)  # uint8 in, uint8 out (MATLAB rounding)
        hr_pm, sr_pm = (mx.array(a[None].astype(np.float32) / 127.5 - 1) for a in (hr, sr))
        features = vgg((hr_pm + 1) / 2)["relu5_4"]
        rms.append(mx.sqrt(mx.mean(mx.square(features))).item())
        content.append(loss(sr_pm, hr_pm).item())
        pixel.append(mse(sr_pm, hr_pm).item())
    return {
        "relu5_4_rms": float(np.median(rms)),
        "content": float(np.median(content)),
        "pixel_mse": float(np.median(pixel)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vgg", nargs="+", help="converted VGG19 files (srgan-mlx convert-vgg)")
    parser.add_argument("--images", nargs="+", required=True, help="folders of HR photos")
    parser.add_argument("--crop", type=int, default=192)
    args = parser.parse_args()
    images = crops(args.images, args.crop)
    print(f"{len(images)} images, central {args.crop}x{args.crop} crops; medians")
    print(
        "| VGG19 file | input convention | relu5_4 RMS | content loss (bicubic x4) | pixel MSE | RMS ratio to first |"
    )
    print("|---|---|---|---|---|---|")
    first = None
    for vgg_file in args.vgg:
        row = measure(vgg_file, images)
        first = first or row
        convention = load_vgg(vgg_file).input_convention
        print(f"| {vgg_file} | {convention} | {row['relu5_4_rms']:.4g} | {row['content']:.4g} | "
              f"{row['pixel_mse']:.4g} | {row['relu5_4_rms'] / first['relu5_4_rms']:.4g} |")  # fmt: skip


if __name__ == "__main__":
    main()
