"""``srgan-mlx serve``: a local web page to upscale photos, compare them with bicubic and turn the realism dial."""

from __future__ import annotations

import click

from .. import defaults
from ..defaults import FIDELITY_MODEL, REALISTIC_MODEL, size_text
from .options import MODEL_HELP, Size, device_option, report_model


@click.command("serve")
@click.option("--host", default=defaults.HOST, show_default=True,
              help="Address to listen on. Anything but a loopback address lets other machines use it (no login).")
@click.option("--port", type=click.IntRange(0, 65535), default=defaults.PORT, show_default=True, help="Port (0: any free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default web browser.")
@click.option("--model", "models", multiple=True, metavar="NAME|PATH",
              help=f"A model to offer (repeatable; the first is the default): {MODEL_HELP} [the shipped models, "
              f"{REALISTIC_MODEL} first].")
@click.option("--fidelity-model", metavar="NAME|PATH",
              help=f"The realism dial's fidelity end, blended with a model of the same shape [{FIDELITY_MODEL}].")
@click.option("--max-memory", type=Size(),
              help=f"Memory budget of one tile's forward pass, as for upscale [{size_text(defaults.MAX_MEMORY)}].")
@click.option("--max-upload", type=Size(), default=size_text(defaults.MAX_UPLOAD), show_default=True,
              help="Largest upload accepted.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=defaults.MAX_PIXELS, show_default=True,
              help="Largest input accepted, in pixels (width x height), read from the header before decoding.")
@click.option("--timeout", type=click.FloatRange(min=1), default=defaults.TIMEOUT, show_default=True,
              help="Seconds a connection may stay silent; an upload that stalls that long (or trickles) gets 408.")
@click.option("--max-connections", type=click.IntRange(min=1), default=defaults.MAX_CONNECTIONS, show_default=True,
              help="Connections served at once; more are answered 503 (busy).")
@click.option("--quality", type=click.IntRange(1, 100), default=defaults.QUALITY, show_default=True,
              help="JPEG/WebP quality.")
@device_option
def command(host, port, open_browser, models, fidelity_model, max_memory, max_upload, max_pixels, timeout,
            max_connections, quality, device):  # fmt: skip
    """Serve a page to upscale photos: drop images, compare with bicubic, turn the realism dial, download.

    Jobs run one at a time; the page shows each one's place in the queue and progress. Ctrl-C (or SIGTERM,
    SIGHUP) stops the server and removes everything it wrote (a private temporary folder).
    """
    import webbrowser

    from ..networks.devices import select_device
    from ..errors import UserError, warn
    from ..interrupts import StopSignal, stop_signals_interrupt
    from ..files.model_io import load_generator, shipped_names
    from ..serve.hosts import is_loopback
    from ..serve.model_cache import Models
    from ..serve.server import Limits, Server
    from ..upscaling.upscaler import model_label

    select_device(device)
    specs = list(models) or sorted(shipped_names(), key=lambda name: name != REALISTIC_MODEL)
    fidelity_spec = fidelity_model or (FIDELITY_MODEL if FIDELITY_MODEL in shipped_names() else None)
    named = {}  # the page's name of each model -> what the command line gave
    for spec in [*specs, fidelity_spec] if fidelity_spec else specs:
        name = model_label(spec)
        if named.setdefault(name, spec) != spec:
            raise UserError(f"{named[name]} and {spec} would both be called {name!r} on the page: export one under "
                            "another file name (srgan-mlx export)")  # fmt: skip
    generators = {name: load_generator(spec, report=report_model) for name, spec in named.items() if spec in specs}
    fidelity = None
    if fidelity_spec:
        name = next(name for name, spec in named.items() if spec == fidelity_spec)
        loaded = generators[name] if name in generators else load_generator(fidelity_spec, report=report_model)
        fidelity = (name, loaded)
    with stop_signals_interrupt():  # SIGTERM (kill, docker stop, systemd) and SIGHUP clean up as Ctrl-C does
        try:
            limits = Limits(max_upload, max_pixels, timeout=timeout, max_connections=max_connections)
            server = Server(host, port, Models(generators, fidelity, max_memory), limits, quality)
        except OSError as exc:  # port taken, address not on this machine, a privileged port
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        try:
            if not is_loopback(host):
                warn(f"--host {host}: anyone who can reach this machine on port {server.port} can use this server "
                     "(no login)")  # fmt: skip
            click.echo(f"srgan-mlx serve: {server.url}  (models: {', '.join(generators)}; Ctrl-C stops)")
            if open_browser:
                webbrowser.open(server.url)
            server.serve_forever()
        except KeyboardInterrupt as exc:
            click.echo(f"stopping ({exc.name})" if isinstance(exc, StopSignal) else "stopping", err=True)
        finally:
            server.close()
