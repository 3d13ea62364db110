"""A second cluster for intake: feed cycles on the FEED_CLUSTER queue, everything else on the main one."""
import textwrap

import pytest

from integration import queueing, tasks
from tests.faults.harness import MANAGE, PYTHON, Proc, Scenario

FEED_QUEUE = "vtexhub-feed"

# The deployment recipe of docs/deployers/processes.md: the feed cluster's settings are the hub's, plus the
# django-q2 queue it listens on (until settings.py reads it from the environment itself).
OVERLAY = textwrap.dedent('''
    import os

    from integration.settings import *  # noqa: F401,F403
    from integration.settings import Q_CLUSTER

    Q_CLUSTER = {**Q_CLUSTER, "cluster_name": os.environ["FEED_CLUSTER"]}
''')


def captured_enqueues(monkeypatch):
    calls = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, *args, **kw: calls.append((func, args, kw)))
    return calls


@pytest.mark.django_db
def test_the_feed_poller_goes_to_the_feed_queue_and_dispatch_to_the_main_queue(account, monkeypatch, settings,
                                                                               django_capture_on_commit_callbacks):
    calls = captured_enqueues(monkeypatch)
    settings.FEED_CLUSTER = FEED_QUEUE
    with django_capture_on_commit_callbacks(execute=True):
        tasks.run_feed_cycles()
        queueing.enqueue_dispatch(account.pk)
    assert [(func, kw["cluster"]) for func, _, kw in calls] == [
        (queueing.FEED_POLLER_TASK, FEED_QUEUE),
        ("integration.tasks.dispatch", settings.Q_CLUSTER["name"]),
    ]


@pytest.mark.django_db
def test_without_a_feed_cluster_everything_goes_to_the_main_queue(account, monkeypatch, settings,
                                                                  django_capture_on_commit_callbacks):
    calls = captured_enqueues(monkeypatch)
    settings.FEED_CLUSTER = ""
    monkeypatch.delenv("FEED_CLUSTER", raising=False)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.run_feed_cycles()
    assert [kw["cluster"] for _, _, kw in calls] == [settings.Q_CLUSTER["name"]]


@pytest.mark.scaleout
@pytest.mark.slow
def test_a_feed_cluster_runs_intake_while_the_main_cluster_dispatches():
    with Scenario("feed-cluster", orders=300, erp_latency_ms=100, hub_env={"FEED_CLUSTER": FEED_QUEUE}) as run:
        conf = run.workdir / "feedconf"
        conf.mkdir()
        (conf / "feed_cluster_settings.py").write_text(OVERLAY)
        run.seed()
        [main] = run.start_clusters(1)
        feed = Proc("qcluster-feed", [PYTHON, MANAGE, "qcluster"], dict(
            run.hub.env, DJANGO_SETTINGS_MODULE="feed_cluster_settings", PYTHONPATH=str(conf), Q_WORKERS="1"), run.workdir)
        run.hub.clusters.append(feed)
        feed.start()
        run.hub.kick_feed_cycle()
        run.wait_for_all(180)
        outcome = run.outcome
        outcome.faults = f"none; feed cycles on a second cluster (queue {FEED_QUEUE}, 1 worker), dispatch on the main one (3 workers)"
        main_log, feed_log = main.log_text(), feed.log_text()
        ran = {name: {func: log.count(f"'integration.tasks.{func}'") for func in ("poll_feeds", "dispatch")}
               for name, log in (("main", main_log), ("feed", feed_log))}
        outcome.notes["tasks_run"] = ran
        outcome = run.finish()
        assert not outcome.violations, outcome.violations
        assert f"[django_q:{FEED_QUEUE}:q] running" in feed_log
        assert ran["feed"]["poll_feeds"] > 0 and ran["main"]["poll_feeds"] == 0, ran
        assert ran["main"]["dispatch"] > 0 and ran["feed"]["dispatch"] == 0, ran
