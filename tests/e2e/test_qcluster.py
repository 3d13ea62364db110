"""A real `qcluster` subprocess starts the feed poller as it starts, and runs a task enqueued
through the configured broker."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from integration.models import FeedEvent
from tests.shared_fixtures import APP_KEY, subprocess_database_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_qcluster_polls_the_feed_as_it_starts_and_runs_a_task_from_the_broker(sandbox, sandbox_store):
    from django_q.brokers import get_broker
    from django_q.models import Success
    from django_q.tasks import async_task

    get_broker().purge_queue()  # leftovers of earlier tests must not keep the cluster busy
    sandbox.create_orders(APP_KEY, 4)
    expected_events = sandbox.feed_depth(APP_KEY)
    env = dict(os.environ, DATABASE_URL=subprocess_database_url(), DEBUG="1", HUB_TESTING="1", Q_WORKERS="2")
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    cluster = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "qcluster"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Nothing enqueued: the cluster's workers start the feed poller as they spawn.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and FeedEvent.objects.filter(account=sandbox_store).count() < expected_events:
            assert cluster.poll() is None, cluster.stdout.read().decode(errors="replace")[-3000:]
            time.sleep(0.5)
        assert FeedEvent.objects.filter(account=sandbox_store).count() == expected_events
        # Stored, then committed: the handles of short lots may wait FEED_COMMIT_DELAY (5 s) for a
        # commit shared with the next lots.
        deadline = time.monotonic() + settings.FEED_COMMIT_DELAY + 10
        while time.monotonic() < deadline and sandbox.feed_depth(APP_KEY):
            time.sleep(0.5)
        assert sandbox.feed_depth(APP_KEY) == 0
        # A task through the broker: one store's cycle as an operator queues it (the feed is empty now).
        task_id = async_task("integration.tasks.feed_cycle_for_account", sandbox_store.pk)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not Success.objects.filter(id=task_id).exists():
            assert cluster.poll() is None, cluster.stdout.read().decode(errors="replace")[-3000:]
            time.sleep(0.5)
        task = Success.objects.filter(id=task_id).first()
        assert task is not None, "the cluster did not run the task within 60 s"
        assert task.result.startswith("e2estore: ")  # ok and empty, or skipped while the poller held the store
        assert FeedEvent.objects.filter(account=sandbox_store).count() == expected_events
    finally:
        os.killpg(cluster.pid, signal.SIGTERM)
        try:
            cluster.wait(10)
        except subprocess.TimeoutExpired:  # django-q2 can hang on shutdown
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()
