"""A search stopped before every suggestion started (Ctrl-C in a protocol's tuning): the
suggestions without a config name no pack. Seen on stabilisers_fair: SIGINT during the tuning of
ring8/nobn-5x5 ended the driver in `TypeError: 'NoneType' object is not subscriptable`
(search._search_cell) instead of the stop message."""

from types import SimpleNamespace

from vi_sweeps.engine.runner import Member, PackSpec
from vi_sweeps.sweep.search import ran_of


def test_results_without_a_config_name_no_pack():
    template = PackSpec("file:///tmp/r", "s", (Member({"seed": 0, "lam": 0.0}, {}),), space=("lam",))
    grid = [SimpleNamespace(config={"lam": 5.0, "search_trial": 3}, error=None),
            SimpleNamespace(config=None, error=None),  # suggested, never started: the stop came first
            SimpleNamespace(config={"lam": 0.5, "search_trial": 4}, error=RuntimeError("lost"))]
    ran = ran_of(template, grid)
    assert [(p.members[0].config["lam"], p.search_trial, e) for p, e in ran] == \
        [(5.0, 3, None), (0.5, 4, "RuntimeError('lost')")]


def test_a_stopped_suggestion_is_queued_again_only_inside_the_space_and_the_runs_suggestions():
    import optuna

    from vi_sweeps.sweep.search import fail_stale

    def stale(lams):
        study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
        for lam in lams:  # asked with these values (queued first), left running as a killed driver leaves them
            study.enqueue_trial({"lam": lam})
            study.ask({"lam": optuna.distributions.FloatDistribution(0.1, 100, log=True)})
        return study

    wide = {"lam": optuna.distributions.FloatDistribution(0.1, 100, log=True)}

    def queued(study):  # what the next suggestions are, as the search asks for them
        waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
        return [study.ask(wide).params for _ in waiting]

    study = stale([50.0, 2.0])
    fail_stale(study, wide, limit=1)  # one suggestion to make: one resumed, the other only failed
    assert queued(study) == [{"lam": 50.0}]
    assert [t.state.name for t in study.trials[:2]] == ["FAIL", "FAIL"]
    study = stale([50.0, 2.0])
    fail_stale(study, {"lam": optuna.distributions.FloatDistribution(0.1, 10, log=True)}, limit=5)
    assert queued(study) == [{"lam": 2.0}]  # 50 lies outside the space as it is now: not resumed
    study = stale([2.0])
    fail_stale(study, {**wide, "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)}, limit=5)
    assert queued(study) == []  # a key the space gained since: another suggestion
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())  # a choice the space dropped
    study.enqueue_trial({"loss": "c"})
    study.ask({"loss": optuna.distributions.CategoricalDistribution(["a", "b", "c"])})
    fail_stale(study, {"loss": optuna.distributions.CategoricalDistribution(["a", "b"])}, limit=5)  # before: ValueError
    assert [t.state.name for t in study.trials] == ["FAIL"]
