"""``srgan-mlx info``: versions, devices, the convolution path and BLAS in use, and the shipped models."""

import os
import platform

import click


@click.command("info")
def command():
    """Print versions, devices, the convolution path per device, the BLAS and the shipped models."""
    import mlx.core as mx

    from .. import __version__, native
    from ..networks import kernels
    from ..environment import CONV, KERNELS
    from ..networks.devices import CONV_PATHS, conv_path, gpu_backend
    from ..native.backends import backend_packages, library_note
    from ..native.loader import SLOWDOWN, missing_extension_fix
    from ..native.libraries import active_blas, is_reference_blas
    from ..errors import UserError
    from ..files.model_io import shipped_models

    def path_on(device):
        try:
            return conv_path(device)
        except UserError as exc:
            return f"error: {exc}"

    click.echo(f"srgan-mlx {__version__}")
    click.echo(f"python {platform.python_version()} on {platform.system()} {platform.machine()}")
    packages = backend_packages()
    listed = ", ".join(f"{name} {version}" for name, version in packages.items()) or "none"
    click.echo(f"mlx {mx.__version__} (backend packages: {listed})")
    note = library_note(packages)
    if note:
        click.echo(f"  {note}")
    cpu_name = mx.device_info(mx.cpu).get("device_name", "")
    click.echo(f"cpu: {cpu_name or 'available'}, convolutions: {path_on(mx.Device(mx.cpu))}")
    extension = native.extension()
    if extension:
        click.echo(f"onednn: oneDNN {extension.onednn_version} extension loaded (built for mlx {extension.mlx_version})")
        state = "in use" if kernels.available() else f"off ({KERNELS}=0)"
        click.echo(f"kernels: native BatchNorm, activations, pooling and Adam on {extension.threads()} threads, {state}")
    else:
        click.echo(f"onednn: not in use, {native.unavailable_reason()}; the CPU runs the pure-MLX 'tuned' convolutions")
        click.echo("kernels: MLX's own operations (one thread), no native extension")
        fix = missing_extension_fix()
        if fix:
            click.echo(f"  warning: {SLOWDOWN}; fix: {fix}")
    backend = gpu_backend()
    if backend:
        gpu_name = mx.device_info(mx.gpu).get("device_name", "")
        click.echo(f"gpu: {backend} {gpu_name}".rstrip() + f", convolutions: {path_on(mx.Device(mx.gpu, 0))}")
    else:
        click.echo("gpu: none (Linux + NVIDIA: pip install 'srgan-mlx[cuda]'; Mac: Apple silicon)")
    click.echo(f"default device: {'gpu' if backend else 'cpu'} (--device auto)")
    click.echo(f"convolution override: {CONV}=<auto|{'|'.join(CONV_PATHS)}> (now: {os.environ.get(CONV, 'unset')})")
    blas = active_blas()
    note = " (slow reference BLAS bundled with MLX's Linux wheels)" if is_reference_blas(blas) else ""
    click.echo(f"blas: {blas}{note}")
    for name, description in shipped_models().items():
        click.echo(f"model {name}: {description}")
