"""The training loop for both stages: data, compiled step, validation, checkpoints, metrics.

A run is first built (:class:`Trainer`: its parts from :mod:`srgan_mlx.training.training_parts`, and the
data), then either started (:meth:`Trainer.start`: ``--init`` weights, a run folder of its own) or
restored from a checkpoint (:meth:`Trainer.restore`), as BasicSR separates creating a
model from ``resume_training``. :func:`train` and :func:`resume` do both and run.
Under ``mlx.launch`` every rank runs this same loop on its shard of each batch
(:mod:`srgan_mlx.training.data`), gradients are averaged (:mod:`srgan_mlx.training.steps`) and rank 0
alone prints and writes.

Ctrl-C (:mod:`srgan_mlx.interrupts`): the first press lets the current step finish, saves a
checkpoint at it and stops with :class:`Interrupted`, whose message says how to resume; a
second press ends the process at once, even inside a step's ``mx.eval``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlx.core as mx
from tqdm import tqdm

from ..atomic import write_text
from ..errors import UserError
from ..files.image_io import write_image
from ..files.model_io import load_init
from ..files.panels import labelled_row
from ..files.run_folder import AVERAGE, GENERATOR, METRICS_FILE, RunFolder, find_checkpoint, run_of
from ..interrupts import Interrupted, first_ctrl_c_asks
from ..progress import progress
from ..quality.evaluate import BIAS_KEYS, Images, evaluate, improves, list_images
from ..quality.imresize import imresize
from ..upscaling.inference import super_resolve
from . import checkpoint
from .config import BEST_MEASURES, PATH_FIELDS, TrainConfig, anchored, option, resumed_config
from .data import BatchLoader, BatchSampler, DataSet
from .metrics_log import MetricsLog
from .training_parts import OPTIMIZES, build, check


class TrainingError(UserError):
    """Training cannot go on (for example a NaN loss); the last good checkpoint stays."""


def best_values(state: dict) -> dict[str, float | None]:
    """The best validation value of each measure a checkpoint's ``state.json`` holds (None where never measured)."""
    return {measure: state.get(f"best_{measure}") for measure in BEST_MEASURES}


@dataclass
class Window:
    """The steps since the last ``metrics.jsonl`` line: how many, and the sum of each value.

    Saved in every checkpoint, so after a resume the next line averages the same steps
    as an uninterrupted run's would.
    """

    steps: int = 0
    sums: dict[str, float] = field(default_factory=dict)

    def add(self, values: dict[str, float]) -> None:
        self.steps += 1
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value

    def means(self) -> dict[str, float]:
        return {key: total / self.steps for key, total in self.sums.items()}


class Trainer:
    """One training run: built here, then :meth:`start` or :meth:`restore`, then :meth:`run`."""

    def __init__(self, config: TrainConfig, began_at: int = 0):
        """``began_at``: the step at which this run's optimizers and discriminator began (0; a run carried on from a
        record began again at the record's step, :meth:`carry_on`)."""
        check(config)
        self.group = mx.distributed.init()
        self.rank, self.world = self.group.rank(), self.group.size()
        self.main = self.rank == 0
        self.config = config
        self.folder = RunFolder(config.out)
        self.metrics = MetricsLog(self.folder)

        mx.random.seed(config.seed)  # identical initial weights on every rank
        self.began_at = began_at
        self.warmup_end = began_at + (config.d_warmup if config.stage == "srgan" else 0)
        self.parts = build(config, began_at)
        self.generator, self.average = self.parts.generator, self.parts.average
        self.modules, self.optimizers = self.parts.modules, self.parts.optimizers

        self.data = DataSet.scan(config.data, config.crop)
        self.sampler = BatchSampler(len(self.data.files), config.batch_size, config.seed, self.world, self.rank)
        self.loader = BatchLoader(self.data, self.sampler, config.crop, config.scale, config.workers)
        self.step = 0
        self.best = best_values({})
        self.window = Window()
        # which images the best values are measured on (check() has read their headers)
        self.val_images = [path.name for path in list_images(Path(config.val))] if config.val else None

    def log(self, message: str) -> None:
        if self.main:
            tqdm.write(message)

    def _barrier(self) -> None:
        if self.world > 1:
            mx.eval(mx.distributed.all_sum(mx.array(0)))

    def start(self, overwrite: bool = False) -> None:
        """A new run: ``--init`` weights, and a run folder that holds no other run (``overwrite``: clear it)."""
        holds = self.folder.holds_run()
        self._barrier()  # every rank has looked before rank 0 writes
        if holds and not overwrite:
            raise UserError(self._occupied())
        if self.config.init:
            load_init(self.generator, self.config.init)
        if self.average is not None:
            self.average.update(self.generator.parameters())  # the average starts at the initial weights
        if self.main:
            if holds:
                self.folder.clear()
                self.log(f"--overwrite: removed the earlier run's checkpoints, metrics and images from {self.folder}")
            self._write_config()

    def _write_config(self) -> None:
        write_text(self.folder.config, json.dumps(self.config.to_dict(), indent=1))

    def _occupied(self) -> str:
        out, latest = self.folder, self.folder.pointed("latest")
        removes = "deletes its config, checkpoints, metrics and validation images; other files stay"
        if latest is None:
            return f"{out} already holds a training run, with no checkpoint yet; start again with --overwrite ({removes})"
        return (
            f"{out} already holds a training run (last checkpoint: {latest.name}); continue it with --resume {out}, "
            f"or start again with --overwrite ({removes})"
        )

    def restore(self, path: Path, state: dict | None = None) -> None:
        """Continue from the checkpoint at ``path``: weights, optimizer states, step, data position, metrics
        (``state``: its ``state.json``, when the caller has read it already)."""
        state = state or checkpoint.read_state(path)
        checkpoint.load_modules(path, self.modules)
        for key, optimizer in self.optimizers.items():
            checkpoint.load_optimizer(path, key, optimizer, self.modules[OPTIMIZES[key]].trainable_parameters())
        self.step = state["step"]
        self.sampler.load_state_dict(state["sampler"])
        self.loader.close()  # it had drawn nothing yet; the new one starts from the restored sampler
        self.loader = BatchLoader(self.data, self.sampler, self.config.crop, self.config.scale, self.config.workers)
        other = self._other_val_images(state)
        self.best = best_values({} if other else state)
        self.window = Window(**state.get("unlogged", {}))
        if self.main:
            dropped = self.metrics.resume(self.step)
            if other:
                self._mark_other_val_images()
            self._write_config()
            later = f"; {dropped} metrics rows written after it dropped" if dropped else ""
            self.log(f"resuming {self.folder} at step {self.step} from {path}{later}")

    def _other_val_images(self, state: dict) -> bool:
        """Whether ``--val`` now names other images (by file name: the same set in a moved folder does not) than the
        run's earlier validations, whose best values ``state`` holds; then the best is counted anew."""
        before = state.get("val_images")
        if before is None or before == self.val_images:
            return False
        self.log(
            f"{option('val')} {self.config.val} holds other images than the run was validated on: "
            "the best checkpoint is counted anew from the next validation"
        )
        return True

    def _mark_other_val_images(self) -> None:
        """A ``metrics.jsonl`` row saying where the validation images change (``metrics.png`` starts its validation
        curves anew there)."""
        self.metrics.append({"step": self.step, "val_changed": self.config.val})

    def carry_on(self, record: Path, state: dict) -> None:
        """Continue a run from its record (:func:`srgan_mlx.training.checkpoint.write_record`) in a run folder that holds no
        run: the generator and its moving average from the record, the step, data position, best values and metrics
        history, and its best generator (:func:`srgan_mlx.training.checkpoint.carry_best`); the discriminator and both
        optimizers start afresh at this step (the record has none), so the discriminator trains alone again for
        ``d_warmup`` steps and the schedules count from here."""
        if self.folder.holds_run():
            raise UserError(f"{self.folder} already holds a run; carry the record {record} on into an empty --out")
        checkpoint.load_modules(record, {k: m for k, m in self.modules.items() if k in (GENERATOR, AVERAGE)})
        self.step = state["step"]
        self.sampler.load_state_dict(state["sampler"])
        self.loader.close()
        self.loader = BatchLoader(self.data, self.sampler, self.config.crop, self.config.scale, self.config.workers)
        other = self._other_val_images(state)
        self.best = best_values({} if other else state)
        self.window = Window(**state.get("unlogged", {}))
        if self.main:
            history = record / METRICS_FILE
            if history.is_file():
                write_text(self.folder.metrics, history.read_text())
            best = checkpoint.carry_best(record, state, self.folder, self.average is not None)
            self.metrics.resume(self.step)
            if other:
                self._mark_other_val_images()
            self._write_config()
            warmup = f"; the discriminator trains alone until step {self.warmup_end}" if self.warmup_end > self.step else ""
            kept = f"; its best generator (step {state['best_step']}) is {best}" if best else ""
            self.log(
                f"carrying on the run recorded in {record} at step {self.step} into {self.folder}: generator and "
                f"moving average from the record, discriminator and optimizers new{warmup}{kept}"
            )

    def run(self) -> Path:
        total = self.config.total_steps()
        self.log(
            f"{self.config.stage}: {len(self.data.files)} images ({self.data.too_small} smaller than "
            f"{self.config.crop}px, {self.data.unreadable} unreadable skipped), {self.world} process(es), "
            f"steps {self.step}->{total}"
        )
        bar = progress(total=total, initial=self.step, disable=not self.main, unit="step")
        try:
            again = f"this step is lost; continue from the last checkpoint with: srgan-mlx train --resume {self.folder}"
            with first_ctrl_c_asks(speak=self.main, again=again) as ctrl_c_pressed:
                while self.step < total:
                    self._train_one(bar, total)
                    validated = bool(self.config.val) and (self.step % self.config.val_every == 0 or self.step == total)
                    best = self.validate() if validated else False
                    saved = self.step % self.config.checkpoint_every == 0 or self.step == total or best
                    if saved:
                        self.save(best)
                    stop = self._agreed(ctrl_c_pressed())
                    if stop and not saved:
                        self.save(False)
                    if self.main and (validated or saved or stop):
                        self.metrics.redraw()
                    if stop:
                        raise Interrupted(
                            f"stopped by Ctrl-C at step {self.step}, checkpoint saved; "
                            f"continue with: srgan-mlx train --resume {self.folder}"
                        )
        except KeyboardInterrupt:
            raise Interrupted(self._stopped_at_once()) from None
        finally:
            bar.close()
            self.loader.close()
        return self.folder.path

    def _train_one(self, bar: tqdm, total: int) -> None:
        started = time.perf_counter()
        lr, hr = self.loader.next()
        waited = time.perf_counter() - started
        # MLX's random key is a function of (seed, rank, step): resumed runs need not save it
        mx.random.seed(hash((self.config.seed, self.rank, self.step)) % 2**32)
        step = self.parts.warmup_step if self.step < self.warmup_end else self.parts.train_step
        out = step(mx.array(lr), mx.array(hr))
        mx.eval(out, step.state)
        losses = {k: v.item() for k, v in out.items()}
        broken = {name: value for name, value in losses.items() if not math.isfinite(value)}
        if broken:
            raise TrainingError(
                f"{', '.join(f'{name} became {value}' for name, value in broken.items())} at step {self.step + 1}; "
                "stopping. "
                f"The last good checkpoint is in {self.folder.checkpoints}"
            )
        self.step += 1
        elapsed = time.perf_counter() - started
        self.window.add({**losses, "seconds": elapsed, "data_wait": waited})
        images = self.config.batch_size * self.world
        bar.update(1)
        shown = "loss" if "loss" in losses else "d_loss"  # a warm-up step trains D alone
        bar.set_postfix({shown: f"{losses[shown]:.4g}", "img_s": f"{images / elapsed:.1f}"})
        if self.step % self.config.log_every == 0 or self.step in (total, self.warmup_end):
            self.record(images)  # (the warm-up's D-only steps are never averaged with full steps)

    def _agreed(self, pressed: bool) -> bool:
        """Whether any rank's Ctrl-C asks to stop (all ranks must stop at the same step)."""
        if self.world == 1:
            return pressed
        return mx.distributed.all_sum(mx.array(int(pressed))).item() > 0

    def _stopped_at_once(self) -> str:
        latest = self.folder.pointed("latest")
        if latest is None:
            return f"stopped at step {self.step}, before the first checkpoint; start again with --overwrite"
        return (
            f"stopped at step {self.step}; the last checkpoint is {latest.name}; "
            f"continue from it with: srgan-mlx train --resume {self.folder}"
        )

    def record(self, images: int) -> None:
        """Average the steps since the last line into one ``metrics.jsonl`` line."""
        if not self.window.steps:
            return
        row = {"step": self.step, **self.window.means()}
        row["images_per_s"] = images / row["seconds"]
        row["unreadable_images"] = self.loader.unreadable
        self.window = Window()
        if self.main:
            self.metrics.append(row)

    def validate(self) -> bool:
        """PSNR/SSIM/colour bias (and NIQE where it names the best) on ``--val`` (standard protocol), bicubic | SR | HR
        images, of the generator's moving average where the run keeps one, else of the generator; True if a new best
        by ``--best-by``."""
        if not self.main:
            return False
        folder = self.folder.validation(self.step)
        label = f"{self.config.stage} step {self.step}"

        def save_images(row: dict, images: Images) -> None:
            bicubic = imresize(images.lr, float(self.config.scale))
            picture = labelled_row([bicubic, images.sr, images.hr], ["bicubic", label, "HR"])
            write_image(folder / f"{row['name']}.png", picture)

        measure = self.config.best_measure()
        generator = self.average if self.average is not None else self.generator
        training = generator.training  # (a moving average read as a reference stays in eval mode)
        generator.eval()
        try:
            result = evaluate(
                self.config.val, self.config.scale, upscaler=lambda lr: super_resolve(generator, lr),
                on_image=save_images, with_niqe=measure == "niqe",
            )  # fmt: skip
        finally:
            generator.train(training)
        mean = result["mean"]
        self.metrics.append({"step": self.step, **{f"val_{k}": v for k, v in mean.items()}})
        best = improves(measure, mean[measure], self.best[measure])
        for key, value in self.best.items():
            if key in mean and improves(key, mean[key], value):
                self.best[key] = mean[key]
        bias = " ".join(f"{k[-1].upper()} {mean[k]:+.2f}" for k in BIAS_KEYS)
        niqe = f", NIQE {mean['niqe']:.2f}" if "niqe" in mean else ""
        self.log(
            f"step {self.step}: validation PSNR {mean['psnr']:.2f} dB, SSIM {mean['ssim']:.4f}{niqe}, "
            f"colour SR-HR {bias} levels{f' (best {measure.upper()})' if best else ''}"
        )
        return best

    def save(self, best: bool) -> None:
        if not self.main:
            return
        state = {
            "config": self.config.to_dict(),
            "began_at": self.began_at,
            "sampler": self.loader.consumed_state,
            **{f"best_{measure}": value for measure, value in self.best.items()},
            "val_images": self.val_images,
            "unlogged": dataclasses.asdict(self.window),
        }
        checkpoint.save_checkpoint(self.folder, self.step, self.modules, self.optimizers, state, best)
        checkpoint.prune(self.folder, self.config.keep)


def train(config: TrainConfig, overwrite: bool = False) -> Path:
    """Start a new run in ``config.out`` and train it; ``overwrite`` replaces a run already there."""
    trainer = Trainer(anchored(config))
    trainer.start(overwrite)
    return trainer.run()


def resumed(path: str | Path, **changes) -> Trainer:
    """The run at ``path`` (run folder or checkpoint) restored, with the operational ``changes`` applied
    (:func:`srgan_mlx.training.config.resumed_config`: others are refused); or carried on from a record
    (:meth:`Trainer.carry_on`), whose paths (``--out``, ``--data``, ``--val``, ``--vgg``) may change too."""
    found = find_checkpoint(path)
    state = checkpoint.read_state(found)
    if checkpoint.is_best_only(state):
        raise UserError(
            f"{found}: only the best generator, carried from a record, not a checkpoint to continue; resume the "
            "run's latest checkpoint (its run folder)"
        )
    saved = state["config"]
    if checkpoint.is_record(state):  # a record may move to another machine: its paths may change with it
        config = resumed_config(saved, changes, movable=PATH_FIELDS)
        trainer = Trainer(anchored(config), began_at=state["step"])
        trainer.carry_on(found, state)
        return trainer
    run = run_of(found)
    config = anchored(resumed_config({**saved, "out": str(run) if run else saved["out"]}, changes))  # a new --val
    trainer = Trainer(config, began_at=state.get("began_at", 0))
    trainer.restore(found, state)
    before = TrainConfig.from_dict(saved)
    if config.stage == "srgan" and config.total_steps() != before.total_steps():
        schedule = (
            f"the learning rate drops to {config.lr_final:g} at step {config.total_steps() // 2} "
            f"(was {before.total_steps() // 2})" if config.lr_final != config.lr
            else f"the learning rate stays at {config.lr:g} to the end"
        )  # fmt: skip
        trainer.log(f"{option('steps')} {config.total_steps()}: {schedule}")
    return trainer


def resume(path: str | Path, **changes) -> Path:
    """Continue the run at ``path`` (see :func:`resumed`) to its last step."""
    return resumed(path, **changes).run()
