"""Every layer kind a ModelSpec can hold has a function in the reference's table and in
every exporter's table, and every target names its step tensors through one StepInterface."""

import pytest

import zoo
from edgelstm.core.artifact import StepInterface, describe
from edgelstm.core.errors import UserError
from edgelstm.core.spec import LAYER_KINDS, STATE_KINDS

#: module -> its table name: layer kind -> the function that computes / emits that layer.
TABLES = {
    "edgelstm.runtime.reference": "LAYERS",
    "edgelstm.converters.tflite_graph": "LAYERS",
    "edgelstm.converters.onnx": "LAYERS",
    "edgelstm.converters.c_source": "LAYER_WRITERS",
    "edgelstm.converters.c_int16": "LAYER_WRITERS",
}


@pytest.mark.parametrize("module", sorted(TABLES))
def test_every_layer_kind_has_an_entry(module):
    import importlib

    table = getattr(importlib.import_module(module), TABLES[module])
    assert sorted(table) == sorted(LAYER_KINDS), f"{module}.{TABLES[module]} does not cover exactly the spec's kinds"
    assert all(callable(fn) for fn in table.values())


@pytest.mark.parametrize("case_id", ["lstm-last-bias-2x-softmax", "gru-act_tanh", "lstm-normalization"])
def test_step_interface_from_spec_and_from_description_agree(case_id):
    spec = zoo.spec(case_id)
    built = StepInterface.from_spec(spec)
    parsed = StepInterface.from_description(describe(spec, "npz"), "test")
    assert parsed == built
    # One state per (recurrent layer, state kind), sized as the layer, in layer order.
    want = [(i, kind, layer.units) for i, layer in enumerate(spec.layers) for kind in STATE_KINDS.get(layer.kind, ())]
    assert [(s.layer, s.kind, s.size) for s in built.states] == want
    assert len({s.name for s in built.states} | {s.output for s in built.states} | {built.input, built.output}) \
        == 2 * len(want) + 2, "every step tensor needs a name of its own"
    assert (built.input_size, built.output_size) == (spec.input_size, spec.output_size)


def test_sequence_description_has_no_state_io_and_is_refused_for_stepping():
    spec = zoo.spec("lstm-last-bias-2x-softmax")
    desc = describe(spec, "onnx", mode="sequence", seq_len=8)
    with pytest.raises(UserError, match="cannot be streamed step by step"):
        StepInterface.from_description(desc, "m.onnx")
    io = StepInterface.from_description(desc, "m.onnx", allow_sequence=True)
    assert io.mode == "sequence" and io.states == ()


@pytest.mark.parametrize("damage", [lambda d: d["input"].pop("size"), lambda d: d.update(states=[{"size": 4}]),
                                    lambda d: d.update(output="y"), lambda d: d["states"][0].update(size="big")])
def test_malformed_description_is_a_user_error(damage):
    desc = describe(zoo.spec("lstm-last-bias-2x-softmax"), "tflite")
    damage(desc)
    with pytest.raises(UserError, match="malformed edgelstm description"):
        StepInterface.from_description(desc, "m.tflite")
