"""The table of the generator's loss terms: each term's weight from its field, the paper's terms summed and the
recipe's added, and every term a curve in metrics.png."""



from srgan_mlx.training.config import TrainConfig
from srgan_mlx.training.loss_terms import generator_terms


def test_the_term_table_gives_the_step_its_terms_and_the_chart_its_legend():
    """The paper's config: content (1) and adversarial (1e-3) summed, pixel and anchor recorded at weight 0, phase and
    artifact absent; weights come from their fields; every term has its curve in metrics.png."""
    from srgan_mlx.training.loss_terms import TERMS, needs_reference
    from srgan_mlx.training.plot import COLORS, LOSS_KEYS

    paper = generator_terms(TrainConfig(stage="srgan"), vgg=None)
    assert [(t.name, t.weight) for t in paper] == [("content", 1.0), ("adversarial", 1e-3), ("pixel", 0.0),
                                                   ("anchor", 0.0)]  # fmt: skip
    recipe = TrainConfig(stage="srgan", phase_weight=3.0, artifact_weight=0.5, ema_decay=0.9)
    assert [(t.name, t.weight) for t in generator_terms(recipe, vgg=None)][-2:] == [("phase", 3.0), ("artifact", 0.5)]
    assert needs_reference(recipe) and not needs_reference(TrainConfig(stage="srgan"))
    assert set(LOSS_KEYS) == {"loss", "d_loss", *(t.name for t in TERMS)} and len(COLORS) == len(set(COLORS))
