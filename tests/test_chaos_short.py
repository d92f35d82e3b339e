"""The chaos suite's short form (`bench.chaos`, `make chaos` for the whole of it): a few
scenarios with real processes and the fleet's identities on, faults of 3 s, each from a clean
state, counted by the independent counter: nothing lost, nothing duplicated, and everything
stored within the recovery goal after each fault ends."""

from rich.console import Console

from bench.chaos.knobs import SHORT
from bench.chaos.scenarios import SHORT_KEYS
from bench.chaos.suite import report, run_suite


def test_short_chaos_loses_nothing_duplicates_nothing_and_recovers_in_time(tmp_path):
    console = Console(width=160, record=True)
    outcomes = run_suite(SHORT, SHORT_KEYS, tmp_path, console)
    report(outcomes, SHORT, console)
    table = console.export_text()
    assert sorted(o.scenario.key for o in outcomes) == sorted(SHORT_KEYS)
    for outcome in outcomes:
        assert outcome.error is None, table
        assert outcome.tally is not None and outcome.tally.written > SHORT.fault_after, table
        assert outcome.tally.lost == 0, table
        assert outcome.duplicated == 0, table
        assert outcome.recovery_s is not None, table
        assert outcome.recovery_s <= SHORT.recovery_goal_s, table
    resent = next(o for o in outcomes if o.scenario.key == "duplicates")
    assert resent.tally is not None and resent.resent > 0, table
    assert resent.tally.resent_in_stream == resent.resent, table  # they reached the coordinator
