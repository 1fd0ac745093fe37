"""`compile: true` either compiles or is refused in one line naming the option (no torch, no
compile: the refusals are the declarations' own, vi_sweeps.gan.declared.compile_refusals)."""

import pytest

from vi_sweeps.core.errors import ConfigError
from vi_sweeps.study.config import TrialConfig


@pytest.mark.parametrize(("keys", "named"), [
    (dict(model="vae"), "model vae has no compiled step (compiled: gan)"),
    (dict(model="aae"), "model aae"),
    (dict(model="ali"), "model ali"),
    (dict(model="em"), "model em"),
    (dict(precision="bf16"), "precision bf16 has no compiled step (compiled: fp32, tf32)"),
])
def test_what_has_no_compiled_step_is_refused_in_one_line(keys, named):
    with pytest.raises((ValueError, ConfigError)) as err:
        TrialConfig(compile=True, **keys)
    text = str(err.value)
    assert named in text and "set compile: false" in text


def test_every_builtin_gan_option_compiles():
    """Every built-in loss, stabiliser and architecture of the GAN family is accepted compiled
    (tests/test_compiled.py and test_compiled_matrix.py train them)."""
    from vi_sweeps.gan.declared import ARCHITECTURES, GAN_LOSSES, STABILISERS

    for loss in GAN_LOSSES.names():
        TrialConfig(compile=True, loss=loss)
    assert all(STABILISERS.meta(n).compiles for n in STABILISERS.names())
    TrialConfig(compile=True, r1=1.0, r2=1.0, gp=1.0, sn=True, ema=0.9, ema_start=10, lr_d=1e-3, lr_g=1e-4, lam=5.0)
    TrialConfig(compile=True, arch="pacgan")
    TrialConfig(compile=True, dataset="digits", image_size=16)
    assert all(ARCHITECTURES.meta(n).compiles for n in ARCHITECTURES.names())


def test_a_plugin_part_not_declared_compilable_is_refused():
    """A plugin's stabiliser or loss that does not declare `compiles` is refused by name."""
    from vi_sweeps.gan.declared import GAN_LOSSES, STABILISERS, Adversarial, Stabiliser, compile_refusals

    assert compile_refusals(TrialConfig(compile=True)) == []
    STABILISERS.register("dragan-test", spec=Stabiliser(("dragan_test_w",), "test", d_penalty=len))
    GAN_LOSSES.register("loss-test", spec=Adversarial(len, len, "test"))

    class Fake:  # a config with the plugin's stabiliser on and its loss chosen
        compile, model, loss, precision, resolved_arch = True, "gan", "loss-test", "fp32", "mlp"

        def at_default(self, key):
            return key != "dragan_test_w"

    try:
        lines = compile_refusals(Fake())
        assert lines == ["compile: loss loss-test is not declared compilable (compiled: "
                         + ", ".join(n for n in GAN_LOSSES.names() if n != "loss-test") + "); set compile: false",
                         "compile: stabiliser dragan-test is not declared compilable (compiled: "
                         + ", ".join(n for n in STABILISERS.names() if n != "dragan-test") + "); set compile: false"]
    finally:  # the registries have no unregister (a name is registered once): this test's own cleanup
        STABILISERS._entries.pop("dragan-test")
        GAN_LOSSES._entries.pop("loss-test")


def test_the_key_at_its_default_changes_no_id():
    """compile is an added key: at false no id changes (committed results keep resolving); at
    true it is part of the id, as precision is."""
    base = TrialConfig(lam=5.0)
    assert "compile" not in base.identity()
    assert base.trial_id == TrialConfig(lam=5.0, compile=False).trial_id
    assert TrialConfig(lam=5.0, compile=True).identity()["compile"] is True
    assert base.trial_id != TrialConfig(lam=5.0, compile=True).trial_id
