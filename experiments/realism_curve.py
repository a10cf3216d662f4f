"""The perception-distortion curve of the --realism dial: PSNR against NIQE on a benchmark set.

    python experiments/realism_curve.py --hr DATA/Set14/HR
    python experiments/realism_curve.py --hr DIR --model runs/srgan --fidelity-model runs/srresnet --steps 0,0.5,1

For each realism R the generator is the weight blend of ``--fidelity-model`` (R = 0) and
``--model`` (R = 1) that ``srgan-mlx upscale --realism R`` runs; it is evaluated with the
standard protocol (``srgan-mlx evaluate --niqe``: PSNR/SSIM on Y with a ``scale``-pixel
border, NIQE of the SR output with the same border). Bicubic and the HR images' own NIQE are
the reference points. Writes ``<out>/realism_curve.json`` and ``realism_curve.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import this_checkout  # noqa: F401  (first: this checkout's srgan_mlx, its BLAS before mlx)
from srgan_mlx.errors import UserError
from srgan_mlx.files.model_io import load_generator
from srgan_mlx.quality.evaluate import evaluate, evaluate_images
from srgan_mlx.upscaling.inference import super_resolve
from srgan_mlx.upscaling.interpolation import interpolate
from srgan_mlx.upscaling.upscaler import model_label


def measure(hr: str, model: str, fidelity_model: str, steps: list[float]) -> dict:
    """Mean PSNR, SSIM and NIQE per realism step, for bicubic, and NIQE of the HR images themselves."""
    fidelity, realistic = load_generator(fidelity_model), load_generator(model)
    scale = realistic.scale
    points = []
    for realism in steps:
        generator = interpolate(fidelity, realistic, realism)
        result = evaluate(hr, scale, upscaler=lambda lr: super_resolve(generator, lr), with_niqe=True)
        points.append({"realism": realism, **result["mean"]})
        print(f"realism {realism:g}: {result['mean']}", file=sys.stderr)
    bicubic = evaluate(hr, scale, with_niqe=True)["mean"]
    hr_niqe = evaluate_images(hr, border=scale)["mean"]["niqe"]
    return {"hr": hr, "model": model, "fidelity_model": fidelity_model, "scale": scale,
            "points": points, "bicubic": bicubic, "hr_niqe": hr_niqe}


def chart(result: dict, path: Path) -> None:
    """NIQE (down: more natural) against PSNR (right: more faithful), one labelled dot per realism."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=14)
    width, height, margin = 760, 520, 70
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    psnrs = [p["psnr"] for p in result["points"]] + [result["bicubic"]["psnr"]]
    niqes = [p["niqe"] for p in result["points"]] + [result["bicubic"]["niqe"], result["hr_niqe"]]
    x0, x1 = min(psnrs) - 0.3, max(psnrs) + 0.3
    y0, y1 = min(niqes) - 0.3, max(niqes) + 0.3

    def at(psnr: float, niqe: float) -> tuple[float, float]:
        return (margin + (psnr - x0) / (x1 - x0) * (width - 2 * margin),
                height - margin - (niqe - y0) / (y1 - y0) * (height - 2 * margin))

    draw.rectangle([margin, margin, width - margin, height - margin], outline="black")
    for i in range(5):
        value = x0 + i * (x1 - x0) / 4
        x, _ = at(value, y0)
        draw.text((x - 16, height - margin + 6), f"{value:.2f}", fill="black", font=font)
        value = y0 + i * (y1 - y0) / 4
        _, y = at(x0, value)
        draw.text((margin - 44, y - 8), f"{value:.2f}", fill="black", font=font)
    draw.text((width / 2 - 120, height - 30), "PSNR (dB, Y, higher = more faithful)", fill="black", font=font)
    draw.text((10, 14), f"NIQE (lower = more natural)   {Path(result['hr']).parent.name} x{result['scale']}, "
              f"--realism from {model_label(result['fidelity_model'])} (0) to {model_label(result['model'])} (1)",
              fill="black", font=font)
    _, hr_y = at(x0, result["hr_niqe"])
    draw.line([margin, hr_y, width - margin, hr_y], fill=(120, 160, 120), width=1)
    draw.text((margin + 6, hr_y - 18), f"HR images' own NIQE {result['hr_niqe']:.2f}", fill=(60, 120, 60), font=font)
    line = [at(p["psnr"], p["niqe"]) for p in result["points"]]
    if len(line) > 1:
        draw.line(line, fill=(230, 120, 30), width=2)
    taken: list[tuple[float, float]] = []  # labels' top-left corners, to stack the labels of points close together
    for point, (x, y) in zip(result["points"], line):
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(230, 120, 30))
        label_y = y - 6
        while any(abs(label_y - ty) < 16 and abs(x - tx) < 60 for tx, ty in taken):
            label_y += 16
        taken.append((x, label_y))
        text = f"R={point['realism']:g}: {point['psnr']:.2f} dB, NIQE {point['niqe']:.2f}"
        side = 1 if x + 12 + draw.textlength(text, font=font) < width else -1  # right of the dot if it fits
        label_x = x + 10 if side > 0 else x - 10 - draw.textlength(text, font=font)
        if label_y != y - 6:
            draw.line([x + 5 * side, y, x + 8 * side, label_y + 7], fill=(150, 150, 150))
        draw.text((label_x, label_y), text, fill="black", font=font)
    x, y = at(result["bicubic"]["psnr"], result["bicubic"]["niqe"])
    draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(40, 110, 200))
    draw.text((x + 8, y - 6), "bicubic", fill=(40, 110, 200), font=font)
    image.save(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hr", required=True, help="folder of HR benchmark images (e.g. Set14/HR)")
    parser.add_argument("--model", default="srgan", help="the realistic end, R = 1 (default: shipped srgan)")
    parser.add_argument("--fidelity-model", default="srresnet", help="the faithful end, R = 0 (default: shipped srresnet)")
    parser.add_argument("--steps", default="0,0.25,0.5,0.75,1", help="realism values, comma separated")
    parser.add_argument("--out", type=Path, default=this_checkout.RESULTS, help="folder for the JSON and PNG")
    args = parser.parse_args(argv)
    steps = [float(v) for v in args.steps.split(",")]
    try:
        result = measure(args.hr, args.model, args.fidelity_model, steps)
    except UserError as exc:
        sys.exit(f"error: {exc}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "realism_curve.json").write_text(json.dumps(result, indent=2) + "\n")
    chart(result, args.out / "realism_curve.png")
    for point in result["points"]:
        print(f"| {point['realism']:g} | {point['psnr']:.2f} | {point['ssim']:.4f} | {point['niqe']:.2f} |")
    print(f"wrote {args.out / 'realism_curve.json'} and {args.out / 'realism_curve.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
