"""The README's tour block, without running it (tests/integration/test_readme_tour.py runs it):
it holds the tour's commands and nothing else, and only what varies between runs is made
equal before a comparison."""

from tests.readme_tour import (
    README,
    TOUR,
    Step,
    _quiet,
    _shortened,
    comparable,
    with_tour,
    written,
)


def test_the_block_holds_the_tours_commands_in_order():
    commands = [line.removeprefix("# netdiag ")
                for line in written(README.read_text()).splitlines() if line.startswith("# ")]
    assert commands == [step.command for step in TOUR]


def test_writing_the_block_changes_nothing_around_it():
    readme = README.read_text()
    assert with_tour(readme, written(readme)) == readme


def test_only_timings_and_random_names_are_made_equal():
    one = "lab broken-mtu is up: 5 nodes in 0.35 s; veth1be1c8d in broken-mtu-host1-1-4ef554767f"
    two = "lab broken-mtu is up: 5 nodes in 1.02 s; vethd8ed508 in broken-mtu-host1-1-0a1b2c3d4e"
    assert comparable(one) == comparable(two)
    assert comparable("MTU 1400") != comparable("MTU 1450")
    assert comparable("5 nodes") != comparable("4 nodes")


def test_a_long_output_keeps_its_head_and_tail():
    lines = [f"line {n}" for n in range(10)]
    assert list(_shortened(lines, Step("x", head=2, tail=1))) == \
        ["line 0", "line 1", "…", "line 9"]
    assert list(_shortened(lines[:4], Step("x", head=2, tail=1))) == lines[:4]


def test_only_other_programs_vanished_namespaces_are_left_out():
    lines = ["NOT CHECKED", "  namespace (gone): namespace /run/netns/ndt-1-c1 is gone",
             "  namespace (gone): namespace /proc/2966/ns/net is gone", "", "0 errors"]
    assert _quiet(lines, "ndt-2") == ["0 errors"]
    mine = "  namespace (gone): namespace /run/netns/ndt-2-web is gone"
    assert _quiet(lines[:1] + [mine] + lines[1:], "ndt-2") == \
        ["NOT CHECKED", mine, "", "0 errors"]
    assert comparable("28 rules over 1085 namespaces") == comparable("28 rules over 8 namespaces")


def test_a_plans_steps_are_compared_in_any_order_but_not_across_plans():
    one = "plan\n  $ ip link set a\n  $ ip link set b\nnext\n  $ ip link set c"
    two = "plan\n  $ ip link set b\n  $ ip link set a\nnext\n  $ ip link set c"
    assert comparable(one) == comparable(two)
    assert comparable(one) != comparable("plan\n  $ ip link set a\nnext\n  $ ip link set b\n"
                                         "  $ ip link set c")
