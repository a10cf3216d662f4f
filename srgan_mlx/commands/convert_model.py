"""``srgan-mlx convert-model``: a PyTorch super-resolution weights file as an srgan-mlx weights file."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("convert-model")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Weights file to write (.safetensors).")  # fmt: skip
@click.option("--float16", is_flag=True, help="Store float16 (half the size; computed in float32, results change "
              "slightly).")  # fmt: skip
def command(source, output, float16):
    """Convert SOURCE, a PyTorch generator's weights (.pth, .pth.tar), for --model.

    \b
    Recognised from the key names (docs/models.md has the table):
      - ESRGAN / Real-ESRGAN RRDBNet, BasicSR layout (params_ema, params):
        RealESRGAN_x4plus.pth, RealESRGAN_x2plus.pth, RealESRNet_x4plus.pth,
        RealESRGAN_x4plus_anime_6B.pth, BasicSR's net_g_*.pth;
      - ESRGAN's own files, 2019 and 2018 key names (RRDB_ESRGAN_x4.pth,
        RRDB_PSNR_x4.pth);
      - SRGAN-PyTorch (Lornatang) SRResNet/SRGAN generators (g_best.pth.tar,
        SRGAN_x4-ImageNet.pth.tar), with or without a module. prefix;
      - srgan-mlx's own generator names saved from PyTorch.
    The file is read without PyTorch and nothing in it is run: a pickle that
    names anything but tensors is refused. Every weight is mapped and its shape
    checked; the network is loaded strictly before the file is written.
    --model takes the .pth file directly as well; converting once saves the
    reading at each start.
    """
    from ..errors import UserError
    from ..files.model_io import is_torch_weights, load_generator, save_network
    from .options import report_model

    if not source.is_file():
        raise UserError(f"{source}: no such file")
    if not is_torch_weights(source):
        raise UserError(f"{source}: not a PyTorch weights file (a torch.save zip or legacy file); srgan-mlx weights "
                        "files need no conversion")  # fmt: skip
    if output.resolve() == source.resolve():
        raise UserError(f"{output}: the output would overwrite the input")
    network = load_generator(source, report=report_model)
    save_network(output, network, float16, source=source.name)
    click.echo(f"wrote {output}")
