"""The training loop for both stages: data, compiled step, validation, checkpoints, metrics.

``srgan-mlx train`` builds a :class:`~srgan_mlx.config.TrainConfig` and calls
:func:`train`. Under ``mlx.launch`` every rank runs this same loop on its shard of
each batch (:mod:`srgan_mlx.data`), gradients are averaged (:mod:`srgan_mlx.steps`)
and rank 0 alone prints and writes.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
from PIL import Image
from tqdm import tqdm

from . import checkpoint
from .config import STAGES, TrainConfig
from .data import BatchLoader, BatchSampler, DataSet
from .discriminator import Discriminator
from .errors import UserError
from .evaluate import evaluate, list_images
from .image_io import load_image
from .generator import Generator
from .imresize import imresize, modcrop, to_uint8
from .inference import super_resolve
from .losses import VGGLoss
from .model_io import load_into, read_weights, resolve_generator_file
from .plot import plot_history
from .vgg import VGG19Features

CONVERT_HINT = "python -m convert.vgg19 --download original -o vgg19.safetensors (the paper's VGG19; see README)"


class TrainingError(UserError):
    """Training cannot go on (for example a NaN loss); the last good checkpoint stays."""


def learning_rate(config: TrainConfig):
    """Constant ``lr`` (SRResNet), or ``lr`` then ``lr_final`` for the second half of the updates (SRGAN)."""
    if config.stage == "srresnet":
        return config.lr
    half = config.total_steps() // 2
    return lambda step: mx.where(step < half, config.lr, config.lr_final)


def load_vgg(path: str | None) -> VGG19Features:
    """The VGG19 of a converted weights file, with the input convention it records (none: torchvision's)."""
    if not path:
        raise UserError(f"--stage srgan needs ImageNet VGG19 weights (--vgg PATH); make them with: {CONVERT_HINT}")
    arrays, config = read_weights(path, "vgg19")
    try:
        vgg = VGG19Features(**config)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: bad VGG19 config {config} ({exc})") from None
    load_into(vgg, arrays, path)
    vgg.freeze()
    return vgg


def load_init(generator: Generator, path: str) -> None:
    """Start the SRGAN generator from SRResNet weights (file, checkpoint or run folder)."""
    file = resolve_generator_file(path)
    arrays, config = read_weights(file, "generator")
    if config != generator.config():
        raise UserError(f"{file}: generator {config} does not match this run's {generator.config()}")
    load_into(generator, arrays, file)


def side_by_side(images: list[np.ndarray]) -> Image.Image:
    """Equal-height uint8 RGB images in a row, 4 px apart."""
    height = max(i.shape[0] for i in images)
    width = sum(i.shape[1] for i in images) + 4 * (len(images) - 1)
    canvas = Image.new("RGB", (width, height), "white")
    x = 0
    for image in images:
        canvas.paste(Image.fromarray(image), (x, 0))
        x += image.shape[1] + 4
    return canvas


class Trainer:
    """One training run; ``run()`` trains to ``config.total_steps()`` and returns the run folder."""

    def __init__(self, config: TrainConfig, resume: str | None = None):
        self.group = mx.distributed.init()
        self.rank, self.world = self.group.rank(), self.group.size()
        self.main = self.rank == 0
        state = None
        if resume:
            path = checkpoint.resolve(resume)
            state = checkpoint.read_state(path)
            config = TrainConfig.from_dict({**state["config"], "steps": config.steps or state["config"]["steps"]})
        self.config = config
        self.out = Path(config.out)
        if config.stage not in STAGES:
            raise UserError(f"unknown stage {config.stage!r}")
        if config.crop % config.scale:
            raise UserError(f"--crop {config.crop} must be a multiple of --scale {config.scale}")

        mx.random.seed(config.seed)  # identical initial weights on every rank
        self.generator = Generator(config.scale, config.num_blocks, config.channels)
        self.opt_g = optim.Adam(learning_rate(config), betas=[config.beta1, config.beta2])
        self.modules = {"generator": self.generator}
        self.optimizers = {"g": self.opt_g}
        if config.stage == "srgan":
            vgg = load_vgg(config.vgg)
            self.discriminator = Discriminator(config.crop)
            self.opt_d = optim.Adam(learning_rate(config), betas=[config.beta1, config.beta2])
            self.modules["discriminator"] = self.discriminator
            self.optimizers["d"] = self.opt_d
            if config.init and state is None:
                load_init(self.generator, config.init)
            content = VGGLoss(vgg, config.vgg_layer, config.vgg_rescale)

        self.data = DataSet.scan(config.data, config.crop)
        self.sampler = BatchSampler(len(self.data.files), config.batch_size, config.seed, self.world, self.rank)
        self.step = 0
        self.history: list[dict] = []
        self.best_psnr = -math.inf
        if state is not None:
            checkpoint.load_modules(path, self.modules)
            self.step = state["step"]
            self.sampler.load_state_dict(state["sampler"])
            self.history = state.get("history", [])
            self.best_psnr = state.get("best_psnr") or -math.inf
        for key, opt in self.optimizers.items():
            params = self.modules["generator" if key == "g" else "discriminator"].trainable_parameters()
            if state is not None:
                checkpoint.load_optimizer(path, key, opt, params)
            else:
                opt.init(params)
        self.loader = BatchLoader(self.data, self.sampler, config.crop, config.scale, config.workers)
        if config.stage == "srresnet":
            from .steps import SRResNetStep

            self.train_step = SRResNetStep(self.generator, self.opt_g)
        else:
            from .steps import SRGANStep

            self.train_step = SRGANStep(
                self.generator, self.discriminator, content, self.opt_g, self.opt_d, config.adversarial_weight
            )

    def log(self, message: str) -> None:
        if self.main:
            tqdm.write(message)

    def run(self) -> Path:
        total = self.config.total_steps()
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(self.config.to_dict(), indent=1))
            self.log(
                f"{self.config.stage}: {len(self.data.files)} images ({self.data.too_small} smaller than "
                f"{self.config.crop}px, {self.data.unreadable} unreadable skipped), {self.world} process(es), "
                f"steps {self.step}->{total}"
            )
        bar = tqdm(total=total, initial=self.step, disable=not self.main, unit="step", dynamic_ncols=True)
        images = self.config.batch_size * self.world
        window: list[dict] = []
        try:
            while self.step < total:
                started = time.perf_counter()
                lr, hr = self.loader.next()
                waited = time.perf_counter() - started
                # MLX's random key is a function of (seed, rank, step): resumed runs need not save it
                mx.random.seed(hash((self.config.seed, self.rank, self.step)) % 2**32)
                out = self.train_step(mx.array(lr), mx.array(hr))
                mx.eval(out, self.train_step.state)
                losses = {k: v.item() for k, v in out.items()}
                if not all(math.isfinite(v) for v in losses.values()):
                    raise TrainingError(
                        f"loss became {losses['loss']} at step {self.step + 1}; stopping. "
                        f"The last good checkpoint is in {checkpoint.checkpoint_dir(self.out)}"
                    )
                self.step += 1
                elapsed = time.perf_counter() - started
                window.append({**losses, "seconds": elapsed, "data_wait": waited})
                bar.update(1)
                bar.set_postfix(loss=f"{losses['loss']:.4g}", img_s=f"{images / elapsed:.1f}")
                if self.step % self.config.log_every == 0 or self.step == total:
                    self.record(window, images)
                    window = []
                validate = self.config.val and (self.step % self.config.val_every == 0 or self.step == total)
                best = self.validate() if validate else False
                if self.step % self.config.checkpoint_every == 0 or self.step == total or best:
                    self.save(best)
        finally:
            bar.close()
            self.loader.close()
        return self.out

    def record(self, window: list[dict], images: int) -> None:
        """Average the last steps into one ``metrics.jsonl`` line."""
        if not window or not self.main:
            return
        row = {"step": self.step, **{k: float(np.mean([w[k] for w in window])) for k in window[0]}}
        row["images_per_s"] = images / row["seconds"]
        row["unreadable_images"] = self.loader.unreadable
        self.append_history(row)

    def append_history(self, row: dict) -> None:
        """Keep ``row``, append it to ``metrics.jsonl`` and redraw ``metrics.png``."""
        self.history.append(row)
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        plot_history(self.history, self.out / "metrics.png")

    def validate(self) -> bool:
        """PSNR/SSIM on ``--val`` (standard protocol), bicubic | SR | HR images; True if a new best."""
        if not self.main:
            return False
        self.generator.eval()
        folder = self.out / "validation" / f"step_{self.step:08d}"
        captured = {}
        files = {path.stem: path for path in list_images(Path(self.config.val))}

        def upscaler(lr):
            captured["lr"] = lr
            captured["sr"] = super_resolve(self.generator, lr)
            return captured["sr"]

        def save(row):
            lr = to_uint8(captured["lr"] * 255.0)
            hr = modcrop(load_image(files[row["name"]])[0], self.config.scale)
            sr = to_uint8(captured["sr"] * 255.0)
            folder.mkdir(parents=True, exist_ok=True)
            side_by_side([imresize(lr, float(self.config.scale)), sr, hr]).save(folder / f"{row['name']}.png")

        try:
            result = evaluate(self.config.val, self.config.scale, upscaler=upscaler, on_image=save)
        finally:
            self.generator.train()
        psnr, ssim = result["mean"]["psnr"], result["mean"]["ssim"]
        self.append_history({"step": self.step, "val_psnr": psnr, "val_ssim": ssim})
        best = psnr > self.best_psnr
        self.best_psnr = max(self.best_psnr, psnr)
        self.log(f"step {self.step}: validation PSNR {psnr:.2f} dB, SSIM {ssim:.4f}{' (best)' if best else ''}")
        return best

    def save(self, best: bool) -> None:
        if not self.main:
            return
        state = {
            "config": self.config.to_dict(),
            "sampler": self.loader.consumed_state,
            "history": self.history,
            "best_psnr": self.best_psnr if math.isfinite(self.best_psnr) else None,
        }
        checkpoint.save_checkpoint(self.out, self.step, self.modules, self.optimizers, state, best)
        checkpoint.prune(self.out, self.config.keep)


def train(config: TrainConfig, resume: str | None = None) -> Path:
    return Trainer(config, resume).run()
