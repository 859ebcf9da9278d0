"""The pipeline spec: valid specs load, bad ones are rejected with the path of the bad key."""

from __future__ import annotations

from importlib import resources

import pytest

from streamfit.errors import SpecError
from streamfit.spec import load_spec, load_spec_text
from streamfit.spec.model import KafkaSourceSpec, PipelineSpec, RiverModelSpec, SklearnModelSpec

BASE = """
name: clicks
topics: {train: clicks, score: clicks}
target: clicked
models:
  - {name: lr, builtin: logistic_regression}
"""


def test_minimal_spec_gets_defaults() -> None:
    spec = load_spec_text(BASE)
    assert spec.source is None and spec.source_or_kafka.kind == "kafka"  # found when built
    assert isinstance(spec.source_or_kafka, KafkaSourceSpec)
    assert spec.source_or_kafka.bootstrap_servers is None
    assert spec.classes is None and spec.missing_label == "dead_letter"
    assert spec.topics.all == ["clicks"]
    assert spec.outputs.results_table_name("clicks") == "clicks_results"
    assert spec.batch.max_records == 1000


def test_adapter_models_are_named_by_their_library() -> None:
    spec = load_spec_text(
        BASE
        + "  - {name: tree, river: tree.HoeffdingTreeClassifier, params: {grace_period: 50}}\n"
        + "  - {name: sgd, sklearn: linear_model.SGDClassifier}\n"
    )
    assert isinstance(spec.models[1], RiverModelSpec)
    assert spec.models[1].params == {"grace_period": 50}
    assert isinstance(spec.models[2], SklearnModelSpec)


def test_kafka_source() -> None:
    spec = load_spec_text(BASE + "source: {kind: kafka, bootstrap_servers: '127.0.0.1:1234'}\n")
    assert isinstance(spec.source, KafkaSourceSpec)
    assert spec.source.bootstrap_servers == "127.0.0.1:1234"


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ("source: {kind: kafka, bootstrap: x}\n", "source.bootstrap"),
        ("source: {kind: carrier_pigeon}\n", "source"),
        ("evaluation: {window: 2}\n", "evaluation.window"),
        ("batch: {max_records: 0}\n", "batch.max_records"),
        ("outputs: {predictions: x}\n", "outputs.predictions"),
        ("features: {types: {age: integer}}\n", "features.types.age"),
        ("surprise: 1\n", "surprise"),
    ],
)
def test_bad_key_is_rejected_with_its_path(extra: str, path: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text(BASE + extra)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")


def test_bad_model_entries_name_the_model() -> None:
    with pytest.raises(SpecError, match=r"^models\.0\.builtin: .*'nope'"):
        load_spec_text(BASE.replace("logistic_regression", "nope"))
    with pytest.raises(SpecError, match=r"^models\.0: a model names one of"):
        load_spec_text(BASE.replace("builtin: logistic_regression", "magic: yes"))
    with pytest.raises(SpecError, match=r"^models\.0\.extra: unknown key"):
        load_spec_text(
            BASE.replace("builtin: logistic_regression", "builtin: logistic_regression, extra: 1")
        )


def test_train_topic_needs_a_target() -> None:
    with pytest.raises(SpecError, match="needs a 'target'"):
        load_spec_text(BASE.replace("target: clicked\n", ""))


def test_duplicate_model_names_rejected() -> None:
    with pytest.raises(SpecError, match="unique"):
        load_spec_text(BASE + "  - {name: lr, builtin: logistic_regression}\n")


def test_not_yaml_and_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec_text("name: [unclosed")
    with pytest.raises(SpecError, match="mapping"):
        load_spec_text("- a list")


def test_missing_file(tmp_path: object) -> None:
    with pytest.raises(SpecError, match="cannot read spec file"):
        load_spec("/nonexistent/spec.yaml")


def test_shipped_demo_spec_is_valid() -> None:
    text = resources.files("streamfit.data.speed_dating").joinpath("pipeline.yaml").read_text()
    spec = load_spec_text(text)
    assert spec.target == "match"
    assert "dec" in spec.features.exclude


@pytest.mark.parametrize(
    ("outputs", "path", "message"),
    [
        ("{results_table: models}", "outputs.results_table", "keeps a table .models."),
        ("{training_table: Dead_Letters}", "outputs.training_table", "'dead_letters'"),
        ("{results_table: checkpoints}", "outputs.results_table", "'checkpoints'"),
        ("{results_table: checkpoint_states}", "outputs.results_table", "checkpoint_states"),
        ("{results_table: result_fields}", "outputs.results_table", "result_fields"),
        ('{results_table: "a\\"b"}', "outputs.results_table", "letters, digits"),
        ('{results_table: "x\'; drop table models; --"}', "outputs.results_table", "letters"),
        ("{results_table: 1st}", "outputs.results_table", "not starting with a digit"),
        ("{results_table: " + "t" * 61 + "}", "outputs.results_table", "at most 60"),
        ("{results_table: same, training_table: same}", "outputs.training_table", "differ"),
        ("{results_table: clicks_training}", "outputs.results_table", "differ"),
        ("{training_table: CLICKS_RESULTS}", "outputs.training_table", "differ"),
    ],
)
def test_bad_table_names_are_rejected_with_their_path(
    outputs: str, path: str, message: str
) -> None:
    with pytest.raises(SpecError, match=message) as info:
        load_spec_text(BASE + f"outputs: {outputs}\n")
    assert info.value.path == path


def test_reserved_tables_are_the_stores_own() -> None:
    from streamfit.spec.model import RESERVED_TABLES
    from streamfit.store.tables import fixed_metadata

    assert set(fixed_metadata().tables) == RESERVED_TABLES


def test_good_table_names_pass() -> None:
    spec = load_spec_text(BASE + "outputs: {results_table: scored, training_table: Quality_2}\n")
    assert spec.outputs.results_table_name(spec.name) == "scored"
    assert spec.outputs.training_table_name(spec.name) == "Quality_2"


def test_a_file_source_refuses_output_topics_it_could_not_write() -> None:
    text = BASE + "source: {kind: file, path: x.csv}\noutputs: {predictions_topic: p}\n"
    with pytest.raises(SpecError) as info:
        load_spec_text(text)
    assert str(info.value).startswith("outputs.predictions_topic: a file source writes no")


@pytest.mark.parametrize(
    ("extra", "start"),
    [
        ("classes: []\n", "classes: "),
        ("classes: [a, a]\n", "classes: each class once"),
        ("task: regression\nclasses: [a, b]\n", "classes: only a classification"),
        ("missing_label: drop\n", "missing_label: "),
    ],
)
def test_bad_classes_and_missing_label_rules_are_rejected(extra: str, start: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text(BASE + extra)
    assert str(info.value).startswith(start)
    assert info.value.path == start.split(":")[0]


def test_a_spec_without_models_runs_the_default_model() -> None:
    base = {"name": "p", "topics": {"train": "t"}, "target": "y"}
    spec = PipelineSpec.model_validate(base)
    assert [(m.name, getattr(m, "builtin", None)) for m in spec.models] == [
        ("default", "binned_logistic_regression")
    ]
    regression = PipelineSpec.model_validate({**base, "task": "regression", "models": []})
    assert [getattr(m, "builtin", None) for m in regression.models] == ["linear_regression"]
