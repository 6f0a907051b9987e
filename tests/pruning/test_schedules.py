"""Pruning schedules: update steps, sparsity curve, serialization."""

import pytest

from edgekeras.errors import InputError
from edgekeras.pruning import FIELDS, plan_schedule
from edgekeras.pruning.schedules import ConstantSparsity, PolynomialDecay, deserialize, serialize
from edgekeras.recipe.schema import check_section


def test_constant_updates_every_frequency_steps_and_at_the_end():
    s = ConstantSparsity(0.6, begin_step=10, end_step=35, frequency=10)
    updates = [step for step in range(50) if s(step)[0]]
    assert updates == [10, 20, 30, 35]
    assert s(20) == (True, 0.6) and s(21) == (False, 0.6)


def test_polynomial_rises_from_initial_to_final():
    s = PolynomialDecay(0.1, 0.8, begin_step=0, end_step=100, power=3, frequency=10)
    assert s.sparsity(0) == pytest.approx(0.1)
    assert s.sparsity(100) == pytest.approx(0.8) and s.sparsity(500) == pytest.approx(0.8)
    assert s.sparsity(50) == pytest.approx(0.8 + (0.1 - 0.8) * 0.5**3)
    values = [s.sparsity(t) for t in range(0, 101, 10)]
    assert values == sorted(values)
    assert s.final_sparsity == pytest.approx(0.8)


@pytest.mark.parametrize("schedule", [ConstantSparsity(0.5, 2, 9, 3), PolynomialDecay(0.0, 0.9, 5, 50, 2, 7)])
def test_round_trip(schedule):
    assert type(schedule).from_config(schedule.get_config()) == schedule
    assert deserialize(serialize(schedule)) == schedule


@pytest.mark.parametrize(
    "make",
    [
        lambda: ConstantSparsity(1.0),
        lambda: PolynomialDecay(0.0, -0.1),
        lambda: ConstantSparsity(0.5, begin_step=10, end_step=5),
        lambda: ConstantSparsity(0.5, frequency=0),
        lambda: PolynomialDecay(0.0, 0.5, power=0),
    ],
)
def test_bad_arguments_are_input_errors(make):
    with pytest.raises(InputError, match="Expected"):
        make()


def test_recipe_section_defaults_span_two_thirds_of_training():
    section = check_section({"sparsity": 0.8}, FIELDS, "prune")
    s = plan_schedule(section, 300)
    assert isinstance(s, PolynomialDecay) and (s.begin_step, s.end_step, s.frequency) == (0, 200, 20)
    nm = plan_schedule(check_section({"sparsity": 0.5, "structure": "2:4"}, FIELDS, "prune"), 300)
    assert isinstance(nm, ConstantSparsity) and nm.target == 0.5


def test_recipe_section_needs_a_sparsity_unless_n_m_fixes_it():
    from edgekeras.pruning import check_section as check_prune

    with pytest.raises(InputError, match=r"Missing required key 'prune\.sparsity'"):
        check_prune(check_section({}, FIELDS, "prune"))
    assert check_prune(check_section({"structure": "1:4"}, FIELDS, "prune"))["sparsity"] == 0.75
    with pytest.raises(InputError, match="edgekeras prune RUN_DIR --structure channels"):
        check_prune(check_section({"sparsity": 0.5, "structure": "channels"}, FIELDS, "prune"))
    with pytest.raises(InputError, match=r"prune\.sparsity"):
        check_section({"sparsity": 1.2}, FIELDS, "prune")
